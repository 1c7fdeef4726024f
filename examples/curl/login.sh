#!/usr/bin/env bash
# Log in with the password grant; saves the token response for the other scripts.
set -euo pipefail
. "$(dirname "$0")/_common.sh"
LOGIN_USER="${BATON_USERNAME:-$(json_field "$CREDENTIALS" username)}"
LOGIN_PASSWORD="${BATON_PASSWORD:-$(json_field "$CREDENTIALS" password)}"
token_request --data-urlencode grant_type=password \
  --data-urlencode "username=$LOGIN_USER" \
  --data-urlencode "password=$LOGIN_PASSWORD"
echo "Logged in as $LOGIN_USER; session $(json_field "$STATE" session_id)"
show < "$STATE"

#!/usr/bin/env bash
# Log in with the password grant; saves the token response for the other scripts.
set -euo pipefail
. "$(dirname "$0")/_common.sh"
USERNAME="${USERNAME:-$(json_field "$CREDENTIALS" username)}"
PASSWORD="${PASSWORD:-$(json_field "$CREDENTIALS" password)}"
mkdir -p "$(dirname "$STATE")"
curl -sS --fail-with-body "$API/token" \
  --data-urlencode grant_type=password \
  --data-urlencode "username=$USERNAME" \
  --data-urlencode "password=$PASSWORD" > "$STATE"
echo "Logged in as $USERNAME; session $(json_field "$STATE" session_id)"
show < "$STATE"

#!/usr/bin/env bash
# Rotate the saved refresh token: the response carries its successor.
set -euo pipefail
. "$(dirname "$0")/_common.sh"
require_state
OLD=$(json_field "$STATE" refresh_token)
token_request --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$OLD"
echo "Rotated: the old refresh token is spent, the new one is saved."
show < "$STATE"

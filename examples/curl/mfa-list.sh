#!/usr/bin/env bash
# The signed-in user's second factors and how many recovery codes are left (never a secret).
set -euo pipefail
. "$(dirname "$0")/_common.sh"
require_state
ACCESS=$(json_field "$STATE" access_token)
curl -sS --fail-with-body "$API/mfa" -H @<(printf 'Authorization: Bearer %s\n' "$ACCESS") | show

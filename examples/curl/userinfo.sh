#!/usr/bin/env bash
# Who am I? Uses the saved access token as a Bearer token.
set -euo pipefail
. "$(dirname "$0")/_common.sh"
require_state
curl -sS --fail-with-body "$API/userinfo" \
  -H "Authorization: Bearer $(json_field "$STATE" access_token)" | show

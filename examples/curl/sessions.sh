#!/usr/bin/env bash
# List my live sessions ("current": true is this one).
set -euo pipefail
. "$(dirname "$0")/_common.sh"
require_state
curl -sS --fail-with-body "$API/sessions" \
  -H "Authorization: Bearer $(json_field "$STATE" access_token)" | show

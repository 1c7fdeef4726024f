#!/usr/bin/env bash
# Confirm the pending TOTP factor with a code (the first argument, else the current one of the
# saved secret). The user's first second factor brings 10 recovery codes: keep them safe.
set -euo pipefail
. "$(dirname "$0")/_common.sh"
require_state
[ -f "$TOTP_STATE" ] || { echo "No $TOTP_STATE yet: run examples/curl/mfa-enrol.sh first." >&2
                          exit 1; }
ACCESS=$(json_field "$STATE" access_token)
FACTOR=$(json_field "$TOTP_STATE" id)
CODE="${1:-$(bash "$(dirname "$0")/totp-code.sh")}"
curl -sS --fail-with-body -X POST "$API/mfa/totp/$FACTOR/confirm" \
  -H @<(printf 'Authorization: Bearer %s\n' "$ACCESS") --data-urlencode "code=$CODE" | show

#!/usr/bin/env bash
# Add a TOTP second factor (SPEC §13.2) with the saved access token (a sign-in of the last
# 15 minutes: factor changes need a recent one). Prints the otpauth:// URI to scan into an
# authenticator app, and saves the factor's id and secret for mfa-confirm.sh and totp-code.sh.
set -euo pipefail
. "$(dirname "$0")/_common.sh"
require_state
ACCESS=$(json_field "$STATE" access_token)
mkdir -p "$(dirname "$TOTP_STATE")"
NEW="$TOTP_STATE.new"
status=$(curl -sS -o "$NEW" -w '%{http_code}' -X POST "$API/mfa/totp" \
  -H @<(printf 'Authorization: Bearer %s\n' "$ACCESS") --data-urlencode "name=${1:-curl}")
if [ "$status" != 201 ]; then
  echo "HTTP $status from $API/mfa/totp:" >&2; cat "$NEW" >&2; echo >&2; rm -f "$NEW"; exit 1
fi
chmod 600 "$NEW" && mv "$NEW" "$TOTP_STATE"
echo "Pending TOTP factor $(json_field "$TOTP_STATE" id): scan this into an authenticator app"
echo "(or let examples/curl/totp-code.sh compute its codes), then run mfa-confirm.sh:"
json_field "$TOTP_STATE" otpauth_uri

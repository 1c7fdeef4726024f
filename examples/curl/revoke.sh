#!/usr/bin/env bash
# Log out: revoke the saved refresh token (RFC 7009), then show that it no longer refreshes.
set -euo pipefail
. "$(dirname "$0")/_common.sh"
require_state
TOKEN=$(json_field "$STATE" refresh_token)
curl -sS --fail-with-body "$API/revoke" --data-urlencode "token=$TOKEN" \
  --data-urlencode token_type_hint=refresh_token -o /dev/null -w "revoke: HTTP %{http_code}\n"
echo "Refreshing with the revoked token now fails:"
STATUS=$(curl -sS -o "$STATE.err" -w '%{http_code}' "$API/token" \
  --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=$TOKEN")
echo "HTTP $STATUS"; show < "$STATE.err"; rm -f "$STATE.err"
[ "$STATUS" = 400 ]

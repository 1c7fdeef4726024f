#!/usr/bin/env bash
# Introspect a token (RFC 7662): admin-introspect.sh [TOKEN]; by default the access token
# login.sh saved. `"active": false` as soon as its session is revoked.
set -euo pipefail
. "$(dirname "$0")/_common.sh"
. "$(dirname "$0")/_admin.sh"
if [ $# -gt 0 ]; then TOKEN="$1"; else require_state; TOKEN=$(json_field "$STATE" access_token); fi
curl -sS --fail-with-body "$API/introspect" \
  -H @<(printf 'Authorization: Bearer %s\n' "$(admin_key)") \
  --data-urlencode "token=$TOKEN" | show

#!/usr/bin/env bash
# Log a user out everywhere: admin-logout-everywhere.sh USER_ID (revokes every session).
set -euo pipefail
. "$(dirname "$0")/_common.sh"
. "$(dirname "$0")/_admin.sh"
USER_ID="${1:?usage: admin-logout-everywhere.sh USER_ID}"
echo "Live sessions before:"
admin_curl GET "/users/$USER_ID/sessions" | show
admin_curl DELETE "/users/$USER_ID/sessions" -o /dev/null \
  -w "log out everywhere: HTTP %{http_code}\n"
echo "Live sessions after:"
admin_curl GET "/users/$USER_ID/sessions" | show

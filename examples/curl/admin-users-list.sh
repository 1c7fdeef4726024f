#!/usr/bin/env bash
# List the tenant's users, following next_cursor page by page:
# admin-users-list.sh [USERNAME]  (with a username: find that one user, normalised as at login)
set -euo pipefail
. "$(dirname "$0")/_common.sh"
. "$(dirname "$0")/_admin.sh"
if [ $# -gt 0 ]; then
  admin_curl GET /users -G --data-urlencode "username=$1" | show
  exit
fi
CURSOR=""
while :; do
  PAGE=$(admin_curl GET /users -G --data-urlencode "limit=${BATON_PAGE_SIZE:-50}" \
    ${CURSOR:+--data-urlencode "cursor=$CURSOR"})
  printf '%s' "$PAGE" | python3 -c 'import json, sys
for u in json.load(sys.stdin)["users"]:
    print(u["id"], u["username"], "disabled" if u["disabled"] else "active", sep="\t")'
  CURSOR=$(printf '%s' "$PAGE" | python3 -c 'import json, sys
print(json.load(sys.stdin)["next_cursor"] or "")')
  [ -n "$CURSOR" ] || break
done

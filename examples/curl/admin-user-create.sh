#!/usr/bin/env bash
# Create a user through the admin API: admin-user-create.sh USERNAME, the password on one
# line of stdin (or in BATON_NEW_PASSWORD). Prints the user object.
set -euo pipefail
. "$(dirname "$0")/_common.sh"
. "$(dirname "$0")/_admin.sh"
NAME="${1:?usage: admin-user-create.sh USERNAME (password on stdin)}"
if [ -z "${BATON_NEW_PASSWORD:-}" ]; then IFS= read -r BATON_NEW_PASSWORD; fi
# Built in Python from the environment: the password never appears in a command line.
BATON_NEW_PASSWORD="$BATON_NEW_PASSWORD" python3 -c 'import json, os, sys
print(json.dumps({"username": sys.argv[1], "password": os.environ["BATON_NEW_PASSWORD"]}))' \
  "$NAME" | admin_curl POST /users -H "Content-Type: application/json" --data-binary @- | show

#!/usr/bin/env bash
# Create an admin key for the tenant (operator side: runs the flask CLI on the server) and
# keep it in instance/curl-admin-key (mode 600) for the other admin-*.sh scripts.
set -euo pipefail
. "$(dirname "$0")/_common.sh"
. "$(dirname "$0")/_admin.sh"
BATON_FLASK="${BATON_FLASK:-$BATON_ROOT/.venv/bin/flask}"
# The settings `make run` uses (its embedded database), unless the environment names others.
export BATON_ENV="${BATON_ENV:-development}"
mkdir -p "$(dirname "$BATON_ADMIN_KEY_FILE")"
umask 077
# The key is the last line; only the first lines are shown here.
OUTPUT=$(cd "$BATON_ROOT" && $BATON_FLASK --app wsgi admin-keys create "$TENANT" \
  --name curl-examples --scope "${BATON_ADMIN_SCOPE:-admin}")
printf '%s\n' "$OUTPUT" | sed '$d'
printf '%s\n' "$OUTPUT" | tail -n 1 > "$BATON_ADMIN_KEY_FILE"
echo "Saved the key in $BATON_ADMIN_KEY_FILE"

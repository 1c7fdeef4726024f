# Shared by the admin-*.sh scripts (on top of _common.sh): where the admin key is.
# BATON_ADMIN_KEY wins; else the file admin-key-create.sh saved (BATON_ADMIN_KEY_FILE).
# Paths default to the project the scripts belong to, whatever the current directory.
BATON_ROOT="${BATON_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
BATON_ADMIN_KEY_FILE="${BATON_ADMIN_KEY_FILE:-$BATON_ROOT/instance/curl-admin-key}"
ADMIN="$API/admin"

admin_key() {
  if [ -n "${BATON_ADMIN_KEY:-}" ]; then printf '%s' "$BATON_ADMIN_KEY"; return; fi
  [ -f "$BATON_ADMIN_KEY_FILE" ] || {
    echo "No admin key: run examples/curl/admin-key-create.sh or set BATON_ADMIN_KEY." >&2
    exit 1
  }
  cat "$BATON_ADMIN_KEY_FILE"
}

admin_curl() {  # admin_curl METHOD PATH [curl args...]: the key goes in a header, never argv
  local method="$1" path="$2" key; shift 2
  key="$(admin_key)" || exit 1  # no key: stop here, not send a request without one
  curl -sS --fail-with-body -X "$method" "$ADMIN$path" \
    -H @<(printf 'Authorization: Bearer %s\n' "$key") "$@"
}

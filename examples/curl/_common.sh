# Shared by the example scripts: where the server is and who logs in.
# Defaults fit `make run`, from any directory; override any of them with BATON_* variables.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

json_field() {  # json_field FILE FIELD [DEFAULT]: one field of a JSON object (or DEFAULT)
  python3 -c 'import json, sys
try:
    print(json.load(open(sys.argv[1]))[sys.argv[2]])
except (OSError, KeyError):
    if len(sys.argv) < 4:
        raise
    print(sys.argv[3])' "$@"
}

TENANT="${BATON_TENANT:-demo}"
STATE="${BATON_CURL_STATE:-$ROOT/instance/curl-tokens.json}"   # the last token response
TOTP_STATE="${BATON_CURL_TOTP:-$ROOT/instance/curl-totp.json}"  # mfa-enrol.sh's factor
CREDENTIALS="${BATON_CREDENTIALS:-$ROOT/instance/demo-credentials.json}"
# The server `make run` serves (it saves its URL with the demo credentials: BIND=...).
BASE_URL="${BATON_BASE_URL:-$(json_field "$CREDENTIALS" base_url http://127.0.0.1:8000)}"
API="$BASE_URL/v1/tenants/$TENANT"

require_state() {
  [ -f "$STATE" ] || { echo "No $STATE yet: run examples/curl/login.sh first." >&2; exit 1; }
}

token_request() {  # token_request CURL_ARGS...: POST …/token; save the answer only on success
  local new="$STATE.new" status
  mkdir -p "$(dirname "$STATE")"
  # umask 077: the saved refresh token is a credential, readable by its user alone.
  status=$(umask 077; curl -sS -o "$new" -w '%{http_code}' "$API/token" "$@") \
    || { rm -f "$new"; exit 1; }
  if [ "$status" != 200 ]; then
    echo "HTTP $status from $API/token:" >&2
    cat "$new" >&2; echo >&2
    rm -f "$new"
    echo "The saved tokens (if any) are unchanged." >&2
    exit 1
  fi
  mv "$new" "$STATE"
}

show() {  # pretty-print a JSON body on stdin
  python3 -m json.tool
}

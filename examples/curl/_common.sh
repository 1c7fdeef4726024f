# Shared by the example scripts: where the server is and who logs in.
# Defaults fit `make run` (run the scripts from the project root); override any of them.
BASE_URL="${BASE_URL:-http://127.0.0.1:8000}"
TENANT="${TENANT:-demo}"
STATE="${STATE:-instance/curl-tokens.json}"   # the last token response, reused by the others
CREDENTIALS="${CREDENTIALS:-instance/demo-credentials.json}"
API="$BASE_URL/v1/tenants/$TENANT"

json_field() {  # json_field FILE FIELD: print one field of a JSON object
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

require_state() {
  [ -f "$STATE" ] || { echo "No $STATE yet: run examples/curl/login.sh first." >&2; exit 1; }
}

show() {  # pretty-print a JSON body on stdin
  python3 -m json.tool
}

#!/usr/bin/env bash
# The TOTP code of the secret mfa-enrol.sh saved, as an authenticator app shows it; with
# --next, the next period's (accepted too: SPEC §13.1 takes one period either side, and a code
# is accepted only once). Uses pyotp from the project's virtualenv (make install).
set -euo pipefail
. "$(dirname "$0")/_common.sh"
[ -f "$TOTP_STATE" ] || { echo "No $TOTP_STATE yet: run examples/curl/mfa-enrol.sh first." >&2
                          exit 1; }
PYTHON="$ROOT/.venv/bin/python"; [ -x "$PYTHON" ] || PYTHON=python3
OFFSET=0; [ "${1:-}" = --next ] && OFFSET=30
"$PYTHON" -c 'import json, sys, time
import pyotp
secret = json.load(open(sys.argv[1]))["secret"]
print(pyotp.TOTP(secret).at(time.time() + int(sys.argv[2])))' "$TOTP_STATE" "$OFFSET"

#!/usr/bin/env bash
# Sign in through the challenge endpoint (SPEC §13.3): the password and a PKCE pair; then, if
# the user has a second factor, a TOTP code (the first argument, else BATON_OTP, else the
# current code of the secret mfa-enrol.sh saved) or a recovery code (BATON_RECOVERY_CODE);
# then the authorization code, redeemed with the PKCE verifier. Saves the token response.
set -euo pipefail
. "$(dirname "$0")/_common.sh"
LOGIN_USER="${BATON_USERNAME:-$(json_field "$CREDENTIALS" username)}"
LOGIN_PASSWORD="${BATON_PASSWORD:-$(json_field "$CREDENTIALS" password)}"
ANSWER="$(mktemp)"; trap 'rm -f "$ANSWER"' EXIT

# RFC 7636: a random verifier, and its S256 challenge (base64url of its SHA-256).
VERIFIER=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
CHALLENGE=$(python3 -c 'import base64, hashlib, sys
digest = hashlib.sha256(sys.argv[1].encode()).digest()
print(base64.urlsafe_b64encode(digest).rstrip(b"=").decode())' "$VERIFIER")

challenge() {  # POST …/authorize-challenge; the answer goes to $ANSWER, the status to stdout
  curl -sS -o "$ANSWER" -w '%{http_code}' "$API/authorize-challenge" "$@"
}

status=$(challenge --data-urlencode "username=$LOGIN_USER" \
  --data-urlencode "password=$LOGIN_PASSWORD" \
  -d "code_challenge=$CHALLENGE" -d code_challenge_method=S256)
if [ "$status" = 400 ] && [ "$(json_field "$ANSWER" error)" = insufficient_authorization ]; then
  echo "A second factor is required (this user can answer with:" \
       "$(json_field "$ANSWER" factors))."
  AUTH_SESSION=$(json_field "$ANSWER" auth_session)
  if [ -n "${BATON_RECOVERY_CODE:-}" ]; then
    ANSWER_FIELD=(--data-urlencode "recovery_code=$BATON_RECOVERY_CODE")
  else
    OTP="${1:-${BATON_OTP:-$(bash "$(dirname "$0")/totp-code.sh")}}"
    ANSWER_FIELD=(--data-urlencode "otp=$OTP")
  fi
  status=$(challenge --data-urlencode "auth_session=$AUTH_SESSION" "${ANSWER_FIELD[@]}")
fi
if [ "$status" != 200 ]; then
  echo "HTTP $status from $API/authorize-challenge:" >&2
  cat "$ANSWER" >&2; echo >&2
  exit 1
fi
CODE=$(json_field "$ANSWER" authorization_code)
token_request -d grant_type=authorization_code --data-urlencode "code=$CODE" \
  -d "code_verifier=$VERIFIER"
echo "Signed in as $LOGIN_USER; session $(json_field "$STATE" session_id)"
show < "$STATE"

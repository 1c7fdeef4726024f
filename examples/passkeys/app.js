// A first-party sign-in page for Baton (SPEC §13.3, §13.5): the authorization challenge
// endpoint with PKCE, a passkey after the password or alone, and passkey registration,
// with the browser's own WebAuthn API. Plain JavaScript, no build step, no inline script.
//
// Tokens stay in this module's memory (a reload signs out); a real app keeps the refresh
// token wherever its threat model says. Never put a token in localStorage of a page that
// runs third-party script.

const params = new URLSearchParams(location.search);
const BATON = (params.get("baton") || "http://127.0.0.1:8000").replace(/\/+$/, "");
const TENANT = params.get("tenant") || "demo";
const API = `${BATON}/v1/tenants/${encodeURIComponent(TENANT)}`;

let session = null; // {access_token, refresh_token, claims}

const $ = (id) => document.getElementById(id);

function say(text) {
  $("status").textContent = text;
}

function base64url(bytes) {
  let binary = "";
  for (const byte of new Uint8Array(bytes)) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function claimsOf(jwt) {
  const payload = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(atob(payload.padEnd(payload.length + ((4 - payload.length % 4) % 4), "=")));
}

async function post(path, fields, accessToken) {
  const headers = {"Content-Type": "application/json"};
  if (accessToken) headers.Authorization = `Bearer ${accessToken}`;
  const response = await fetch(`${API}${path}`, {
    method: "POST", headers, body: JSON.stringify(fields), credentials: "omit",
  });
  const text = await response.text();
  return {status: response.status, body: text ? JSON.parse(text) : {}};
}

function failure(answer) {
  const {error, error_description: description} = answer.body;
  return new Error(`${answer.status} ${error || ""}: ${description || "no description"}`);
}

// RFC 7636: the verifier stays here; Baton gets only its SHA-256 (S256).
async function pkcePair() {
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return {verifier, challenge: base64url(digest)};
}

// navigator.credentials.get() for the options Baton sent; the credential as a JSON string.
async function assertion(options) {
  const publicKey = PublicKeyCredential.parseRequestOptionsFromJSON(options);
  const credential = await navigator.credentials.get({publicKey});
  return JSON.stringify(credential.toJSON());
}

// The whole challenge flow: the first request, then as many answers as Baton asks for
// (here: a passkey), then the code for tokens at the token endpoint.
async function signIn(first) {
  const {verifier, challenge} = await pkcePair();
  let answer = await post("/authorize-challenge", {
    ...first, code_challenge: challenge, code_challenge_method: "S256",
  });
  while (answer.status === 400 && answer.body.error === "insufficient_authorization") {
    if (!answer.body.webauthn) {
      throw new Error(`this page answers with a passkey; Baton asks for one of: ` +
                      `${answer.body.factors.join(", ") || "(enrol a factor first)"}`);
    }
    say("Waiting for your passkey…");
    answer = await post("/authorize-challenge", {
      auth_session: answer.body.auth_session,
      webauthn_response: await assertion(answer.body.webauthn),
    });
  }
  if (answer.status !== 200) throw failure(answer);
  const tokens = await post("/token", {
    grant_type: "authorization_code", code: answer.body.authorization_code,
    code_verifier: verifier,
  });
  if (tokens.status !== 200) throw failure(tokens);
  session = {...tokens.body, claims: claimsOf(tokens.body.access_token)};
  show();
  say(`Signed in with ${session.claims.amr.join(" + ")}.`);
}

async function addPasskey() {
  const options = await post("/mfa/passkeys/options", {}, session.access_token);
  if (options.status !== 200) throw failure(options);
  say("Creating a passkey…");
  const publicKey = PublicKeyCredential.parseCreationOptionsFromJSON(options.body);
  const credential = await navigator.credentials.create({publicKey});
  const registered = await post("/mfa/passkeys", {
    credential: JSON.stringify(credential.toJSON()), name: "This browser",
  }, session.access_token);
  if (registered.status !== 201) throw failure(registered);
  const codes = registered.body.recovery_codes || [];
  $("recovery-codes").replaceChildren(...codes.map((code) => {
    const item = document.createElement("li");
    item.textContent = code;
    return item;
  }));
  $("recovery").hidden = codes.length === 0;
  say(`Passkey added (factor ${registered.body.id}).`);
}

async function signOut() {
  await post("/revoke", {token: session.refresh_token, token_type_hint: "refresh_token"});
  session = null;
  $("recovery").hidden = true;
  show();
  say("Signed out.");
}

function show() {
  $("signed-out").hidden = session !== null;
  $("signed-in").hidden = session === null;
  if (session) {
    $("who").textContent = `user ${session.claims.sub}`;
    $("amr").textContent = JSON.stringify(session.claims.amr);
  }
}

function guarded(action) {
  return async () => {
    for (const button of document.querySelectorAll("button")) button.disabled = true;
    try {
      await action();
    } catch (error) {
      say(`Error: ${error.message}`);
    } finally {
      for (const button of document.querySelectorAll("button")) button.disabled = false;
    }
  };
}

$("server").textContent = BATON;
$("tenant").textContent = TENANT;
$("signin-password").addEventListener("click", guarded(() => signIn({
  username: $("username").value, password: $("password").value,
})));
$("signin-passkey").addEventListener("click", guarded(() => {
  const username = $("username").value.trim();
  return signIn(username ? {passkey: "1", username} : {passkey: "1"});
}));
$("add-passkey").addEventListener("click", guarded(addPasskey));
$("signout").addEventListener("click", guarded(signOut));
show();
say(window.PublicKeyCredential && PublicKeyCredential.parseRequestOptionsFromJSON
  ? "Ready." : "Error: this browser has no WebAuthn JSON support (PublicKeyCredential.parse…FromJSON).");

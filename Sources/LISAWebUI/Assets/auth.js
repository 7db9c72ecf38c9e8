// Signing in: an API token or the admin key pasted by the user, or OIDC's
// authorization-code flow with PKCE (S256) when the server has an issuer configured.
// The credential lives in this tab's sessionStorage, or in localStorage when the user
// asks to be remembered on this device; signing out removes both.

const KEY = 'lisa.credential';
const PENDING = 'lisa.oidc.pending';

export function storedCredential() {
  const raw = sessionStorage.getItem(KEY) ?? localStorage.getItem(KEY);
  if (!raw) return null;
  try {
    const credential = JSON.parse(raw);
    // An expired sign-in is kept only when it can be renewed with its refresh token.
    if (credential.expiresAt && credential.expiresAt * 1000 < Date.now() && !credential.refreshToken) {
      forgetCredential();
      return null;
    }
    return credential;
  } catch {
    forgetCredential();
    return null;
  }
}

/** Keeps `credential` ({token, kind, expiresAt?, idToken?, refreshToken?}). */
export function rememberCredential(credential, { persistent = false } = {}) {
  forgetCredential();
  (persistent ? localStorage : sessionStorage).setItem(KEY, JSON.stringify(credential));
}

/** Keeps a renewed credential where the old one was. */
function replaceCredential(credential) {
  const persistent = localStorage.getItem(KEY) !== null;
  rememberCredential(credential, { persistent });
}

export function forgetCredential() {
  sessionStorage.removeItem(KEY);
  localStorage.removeItem(KEY);
}

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function randomString(bytes = 32) {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** The page itself, without query or fragment: where the issuer sends the browser back. */
function redirectURI() {
  return `${location.origin}${location.pathname}`;
}

/** Sends the browser to the issuer's sign-in page. */
export async function beginOIDCSignIn(oidc) {
  if (!crypto.subtle) throw new Error('Signing in with OIDC needs HTTPS (or localhost): this page is not a secure context.');
  const verifier = randomString(48);
  const state = randomString(16);
  const nonce = randomString(16);
  const challenge = base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, nonce, returnTo: location.hash }));
  const url = new URL(oidc.authorizationEndpoint);
  url.search = new URLSearchParams({
    response_type: 'code', client_id: oidc.clientId, redirect_uri: redirectURI(), scope: oidc.scopes,
    state, nonce, code_challenge: challenge, code_challenge_method: 'S256',
  }).toString();
  location.assign(url.toString());
}

function claims(jwt) {
  const payload = jwt.split('.')[1] ?? '';
  const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(payload.length / 4) * 4, '='));
  return JSON.parse(new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0))));
}

/**
 * Finishes a sign-in when the issuer has sent the browser back with `?code=&state=`:
 * exchanges the code (with the PKCE verifier) for tokens and returns the credential and
 * where the user was. `null` when this load is not a return from the issuer.
 */
export async function completeOIDCSignIn(oidc) {
  const query = new URLSearchParams(location.search);
  if (!query.has('code') && !query.has('error')) return null;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? 'null');
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, '', `${location.pathname}${pending?.returnTo ?? ''}`);
  if (query.has('error')) {
    throw new Error(`The sign-in was refused: ${query.get('error_description') ?? query.get('error')}.`);
  }
  if (!pending || pending.state !== query.get('state')) {
    throw new Error('The sign-in answer does not match a sign-in started here. Please sign in again.');
  }
  const response = await fetch(oidc.tokenEndpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams({
      grant_type: 'authorization_code', code: query.get('code'), redirect_uri: redirectURI(),
      client_id: oidc.clientId, code_verifier: pending.verifier,
    }),
  });
  const tokens = await response.json().catch(() => ({}));
  if (!response.ok || !tokens.id_token) {
    throw new Error(`The identity provider did not issue a token: ${tokens.error_description ?? tokens.error ?? response.status}.`);
  }
  const idClaims = claims(tokens.id_token);
  if (idClaims.nonce !== pending.nonce) throw new Error('The identity token does not carry this sign-in\'s nonce. Please sign in again.');
  // LISA verifies the ID token (audience: the client id) on every request.
  return {
    credential: {
      token: tokens.id_token, kind: 'oidc', expiresAt: idClaims.exp, idToken: tokens.id_token, refreshToken: tokens.refresh_token,
    },
    returnTo: pending.returnTo,
  };
}

/**
 * Renews an OIDC sign-in with its refresh token (when the issuer gave one) and keeps the
 * new tokens. Returns the new credential; throws when the issuer refuses.
 */
export async function refreshOIDCSignIn(oidc, credential) {
  const response = await fetch(oidc.tokenEndpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', Accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: credential.refreshToken, client_id: oidc.clientId }),
  });
  const tokens = await response.json().catch(() => ({}));
  if (!response.ok || !tokens.id_token) {
    throw new Error(`The identity provider did not renew the sign-in: ${tokens.error_description ?? tokens.error ?? response.status}.`);
  }
  const renewed = {
    ...credential, token: tokens.id_token, idToken: tokens.id_token, expiresAt: claims(tokens.id_token).exp,
    refreshToken: tokens.refresh_token ?? credential.refreshToken,
  };
  replaceCredential(renewed);
  return renewed;
}

/** Milliseconds until a credential expiring at `expiresAt` (seconds) should be renewed. */
export function renewalDelay(expiresAt, now = Date.now()) {
  const remaining = expiresAt * 1000 - now;
  return Math.max(0, remaining - Math.min(60000, remaining * 0.2));
}

/** Where to send the browser to end the issuer's session, if it has such an endpoint. */
export function signOutURL(oidc, credential) {
  if (!oidc?.endSessionEndpoint || credential?.kind !== 'oidc') return null;
  const url = new URL(oidc.endSessionEndpoint);
  url.searchParams.set('id_token_hint', credential.idToken);
  url.searchParams.set('post_logout_redirect_uri', redirectURI());
  url.searchParams.set('client_id', oidc.clientId);
  return url.toString();
}

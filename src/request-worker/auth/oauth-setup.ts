/**
 * `oauth setup`: builds the authorization-code consent URL with PKCE (S256) and a random state. Only builds
 * the URL; consent and code exchange happen outside the broker. No I/O.
 * oauth4webapi was considered: its PKCE/state helpers are a few lines of node:crypto, and its token calls do
 * their own fetch (we must send through the policy-checked transport), so it is not used.
 */
import { createHash, randomBytes } from 'node:crypto';
import { fail, ok, type Result } from '../../core/errors.js';

export interface ConsentUrlInput {
  readonly authUrl: string;
  readonly clientId: string;
  readonly redirectUri: string;
  readonly scopes?: readonly string[];
  /** Defaults to 32 random bytes, base64url. */
  readonly state?: string;
  /** RFC 7636 code verifier (43–128 unreserved chars); defaults to 32 random bytes, base64url. */
  readonly codeVerifier?: string;
}

export interface ConsentUrl {
  readonly consentUrl: string;
  readonly state: string;
  /** Keep it for the code exchange; never put it in the URL. */
  readonly codeVerifier: string;
  readonly codeChallenge: string;
  readonly codeChallengeMethod: 'S256';
}

const VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;
const LOOPBACK_HOSTS: ReadonlySet<string> = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** RFC 7636 S256: base64url(sha256(ascii(verifier))), unpadded. */
export function pkceChallenge(codeVerifier: string): string {
  return createHash('sha256').update(codeVerifier, 'ascii').digest('base64url');
}

export function randomUrlToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

function parseUrl(value: unknown, what: string): Result<URL> {
  if (typeof value !== 'string' || value.length === 0) return fail('invalid_request', `${what} is required`);
  try {
    return ok(new URL(value));
  } catch {
    return fail('invalid_request', `${what} must be an absolute URL`);
  }
}

/** Authorization endpoint: https only, no credentials, no fragment. */
export function checkAuthUrl(value: unknown): Result<URL> {
  const url = parseUrl(value, '--auth-url');
  if (!url.ok) return url;
  if (url.value.protocol !== 'https:') return fail('invalid_request', '--auth-url must use https');
  if (url.value.username !== '' || url.value.password !== '' || url.value.hash !== '') {
    return fail('invalid_request', '--auth-url must not contain credentials or a fragment');
  }
  return url;
}

/** Redirect URI: https, or http on a loopback host (RFC 8252 native apps). No fragment. */
export function checkRedirectUri(value: unknown): Result<URL> {
  const url = parseUrl(value, '--redirect-uri');
  if (!url.ok) return url;
  const { protocol, hostname } = url.value;
  const allowed = protocol === 'https:' || (protocol === 'http:' && LOOPBACK_HOSTS.has(hostname));
  if (!allowed) return fail('invalid_request', '--redirect-uri must be https or http://127.0.0.1/localhost');
  if (url.value.hash !== '' || url.value.username !== '' || url.value.password !== '') {
    return fail('invalid_request', '--redirect-uri must not contain credentials or a fragment');
  }
  return url;
}

export function buildConsentUrl(input: ConsentUrlInput): Result<ConsentUrl> {
  const auth = checkAuthUrl(input.authUrl);
  if (!auth.ok) return auth;
  const redirect = checkRedirectUri(input.redirectUri);
  if (!redirect.ok) return redirect;
  if (typeof input.clientId !== 'string' || input.clientId.trim().length === 0) {
    return fail('invalid_request', '--client-id is required');
  }
  const scopes = (input.scopes ?? []).map((s) => s.trim()).filter((s) => s.length > 0);
  if (scopes.some((s) => /[\s"\\]/.test(s)))
    return fail('invalid_request', '--scope values must be single tokens');
  const state = input.state ?? randomUrlToken();
  if (state.length === 0 || state.length > 512 || /[\u0000-\u0020\u007f]/.test(state)) {
    return fail('invalid_request', '--state must be 1-512 visible characters');
  }
  const codeVerifier = input.codeVerifier ?? randomUrlToken();
  if (!VERIFIER.test(codeVerifier)) {
    return fail('invalid_request', 'code verifier must be 43-128 unreserved characters (RFC 7636)');
  }
  const codeChallenge = pkceChallenge(codeVerifier);
  const url = new URL(auth.value.href);
  // Our parameters replace any of the same name already in the auth URL; others (e.g. access_type) stay.
  const params = url.searchParams;
  params.set('response_type', 'code');
  params.set('client_id', input.clientId.trim());
  params.set('redirect_uri', redirect.value.href);
  if (scopes.length > 0) params.set('scope', scopes.join(' '));
  else params.delete('scope');
  params.set('state', state);
  params.set('code_challenge', codeChallenge);
  params.set('code_challenge_method', 'S256');
  return ok({ consentUrl: url.href, state, codeVerifier, codeChallenge, codeChallengeMethod: 'S256' });
}

/**
 * oauth2: the pure pieces of the OAuth 2 runtime (RFC 6749 refresh_token and client_credentials grants):
 * reading the stored token state, building the token request, validating the token response, deciding when to
 * refresh, and injecting the cached access token. No I/O here (see oauth2-client.ts); consent/code exchange
 * is outside the broker (oauth-setup.ts only builds the consent URL).
 *
 * Secret shape (one JSON secret, camelCase as written back; snake_case aliases accepted on read):
 *   {"clientId", "clientSecret"?, "refreshToken"?, "accessToken"?, "accessTokenExpiresAtMs"?}
 * `clientId` may come from the spec instead (`client_id`: a public client such as the Codex CLI login, whose
 * stored JSON has none). Other fields of the secret (an account id, an e-mail) are kept on write-back.
 * No `clientSecret` = public client (PKCE-style): `client_id` goes in the form body and no Basic auth is sent.
 * Injection renders `inject` (default `authorization: Bearer {{access_token}}`) with only `{{access_token}}`,
 * plus `extra_inject` headers that may use only the non-secret `identity_fields` the spec names (e.g.
 * `account_id`), so client secrets and refresh tokens can never reach the upstream.
 */
import { fail, ok, type Result } from '../../core/errors.js';
import type { HeaderTemplate } from '../../core/registry/types.js';
import type { AuthSpecBody, AuthStrategy, HeaderPair, SecretValues } from './strategy.js';
import {
  checkHeaderName,
  compileTemplate,
  type CompiledTemplate,
  isSafeHeaderValue,
  renderHeaderValue,
  restrictPlaceholders,
} from './template.js';

export type OAuth2Spec = AuthSpecBody<'oauth2'>;

export const DEFAULT_OAUTH2_INJECT: HeaderTemplate = Object.freeze({
  header_name: 'authorization',
  value_template: 'Bearer {{access_token}}',
});
export const DEFAULT_REFRESH_SKEW_MS = 60_000;
/** Used when a token response omits `expires_in` (RFC 6749 makes it optional). */
export const DEFAULT_EXPIRES_IN_S = 3600;

export interface OAuth2TokenState {
  readonly clientId: string;
  readonly clientSecret?: string;
  readonly refreshToken?: string;
  readonly accessToken?: string;
  readonly accessTokenExpiresAtMs?: number;
  /**
   * When a refresh FORCED by an upstream 401 obtained this access token (broker-managed, like the expiry).
   * Stored with the token so every request worker and process sees it: see oauth2-client.ts.
   */
  readonly accessTokenForcedAtMs?: number;
  /** True when `clientId` came from the spec's `client_id` (then it is not written into the secret). */
  readonly clientIdFromSpec?: boolean;
  /** Fields of the stored JSON this module does not manage (account id, e-mail…), kept on write-back. */
  readonly extra?: Readonly<Record<string, string | number | boolean>>;
}

/** Every field name the state is read from (camelCase and the accepted aliases). */
const STATE_FIELDS: ReadonlySet<string> = new Set([
  'clientId',
  'client_id',
  'clientSecret',
  'client_secret',
  'refreshToken',
  'refresh_token',
  'accessToken',
  'access_token',
  'accessTokenExpiresAtMs',
  'access_token_expires_at_ms',
  'expires_at',
  'expires',
  'accessTokenForcedAtMs',
]);

export interface TokenRequest {
  readonly url: string;
  readonly headers: readonly HeaderPair[];
  /** application/x-www-form-urlencoded */
  readonly body: string;
}

export interface TokenGrant {
  readonly accessToken: string;
  readonly expiresAtMs: number;
  /** Present when the server rotated the refresh token. */
  readonly refreshToken?: string;
}

const nonEmpty = (v: string | undefined): string | undefined =>
  v !== undefined && v.length > 0 ? v : undefined;

function parseMs(raw: string | number | undefined): number | undefined | null {
  if (raw === undefined) return undefined;
  const n = typeof raw === 'number' ? raw : Number(raw);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

function buildState(
  get: (...names: string[]) => string | number | undefined,
  spec: Pick<OAuth2Spec, 'client_id'> | undefined,
): Result<OAuth2TokenState> {
  const str = (...names: string[]) => {
    const v = get(...names);
    return typeof v === 'string' ? nonEmpty(v) : undefined;
  };
  const storedClientId = str('clientId', 'client_id');
  const clientId = storedClientId ?? nonEmpty(spec?.client_id);
  if (clientId === undefined) return fail('auth_failed', 'oauth2 secret must be JSON with a clientId');
  // `expires_at` / `expires`: the Codex CLI login's names for the same epoch-milliseconds expiry.
  const expires = parseMs(
    get('accessTokenExpiresAtMs', 'access_token_expires_at_ms', 'expires_at', 'expires'),
  );
  if (expires === null)
    return fail('auth_failed', 'oauth2 secret accessTokenExpiresAtMs must be epoch milliseconds');
  const forcedAt = parseMs(get('accessTokenForcedAtMs'));
  if (forcedAt === null)
    return fail('auth_failed', 'oauth2 secret accessTokenForcedAtMs must be epoch milliseconds');
  const clientSecret = str('clientSecret', 'client_secret');
  const refreshToken = str('refreshToken', 'refresh_token');
  const accessToken = str('accessToken', 'access_token');
  return ok({
    clientId,
    ...(clientSecret === undefined ? {} : { clientSecret }),
    ...(refreshToken === undefined ? {} : { refreshToken }),
    ...(accessToken === undefined ? {} : { accessToken }),
    ...(expires === undefined ? {} : { accessTokenExpiresAtMs: expires }),
    ...(forcedAt === undefined ? {} : { accessTokenForcedAtMs: forcedAt }),
    ...(storedClientId === undefined ? { clientIdFromSpec: true } : {}),
  });
}

/** Token state from a credential's SecretValues (JSON fields become placeholders; see secrets.ts). */
export function readOAuth2State(
  secrets: SecretValues,
  spec?: Pick<OAuth2Spec, 'client_id'>,
): Result<OAuth2TokenState> {
  return buildState((...names) => secrets.first(...names), spec);
}

/** Token state from the raw stored secret value (JSON text). */
export function parseOAuth2Secret(
  value: string,
  spec?: Pick<OAuth2Spec, 'client_id'>,
): Result<OAuth2TokenState> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return fail('auth_failed', 'oauth2 secret must be a JSON object');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return fail('auth_failed', 'oauth2 secret must be a JSON object');
  }
  const obj = parsed as Record<string, unknown>;
  const state = buildState((...names) => {
    for (const n of names) {
      const v = Object.hasOwn(obj, n) ? obj[n] : undefined;
      if (typeof v === 'string' || typeof v === 'number') return v;
    }
    return undefined;
  }, spec);
  if (!state.ok) return state;
  const extra: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (STATE_FIELDS.has(k)) continue;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') extra[k] = v;
  }
  return Object.keys(extra).length === 0 ? state : ok({ ...state.value, extra });
}

/** The JSON written back to the vault after a refresh (camelCase, stable key order). */
export function serializeOAuth2Secret(state: OAuth2TokenState): string {
  return JSON.stringify({
    ...state.extra,
    ...(state.clientIdFromSpec === true ? {} : { clientId: state.clientId }),
    ...(state.clientSecret === undefined ? {} : { clientSecret: state.clientSecret }),
    ...(state.refreshToken === undefined ? {} : { refreshToken: state.refreshToken }),
    ...(state.accessToken === undefined ? {} : { accessToken: state.accessToken }),
    ...(state.accessTokenExpiresAtMs === undefined
      ? {}
      : { accessTokenExpiresAtMs: state.accessTokenExpiresAtMs }),
    ...(state.accessTokenForcedAtMs === undefined
      ? {}
      : { accessTokenForcedAtMs: state.accessTokenForcedAtMs }),
  });
}

/** Merge a successful grant into the stored state (keeps the old refresh token unless rotated). */
export function applyTokenGrant(state: OAuth2TokenState, grant: TokenGrant): OAuth2TokenState {
  const { accessTokenForcedAtMs: _previousToken, ...rest } = state;
  return {
    ...rest,
    accessToken: grant.accessToken,
    accessTokenExpiresAtMs: grant.expiresAtMs,
    ...(grant.refreshToken === undefined ? {} : { refreshToken: grant.refreshToken }),
  };
}

/** Validate a token endpoint: absolute https URL without userinfo or fragment. */
export function checkTokenEndpoint(endpoint: unknown): Result<URL> {
  if (typeof endpoint !== 'string') return fail('auth_failed', 'oauth2.token_endpoint must be a string');
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return fail('auth_failed', 'oauth2.token_endpoint must be an absolute URL');
  }
  if (url.protocol !== 'https:') return fail('auth_failed', 'oauth2.token_endpoint must use https');
  if (url.username !== '' || url.password !== '' || url.hash !== '') {
    return fail('auth_failed', 'oauth2.token_endpoint must not contain credentials or a fragment');
  }
  return ok(url);
}

/** RFC 6749 §2.3.1: client id/secret are form-urlencoded before Basic encoding. */
function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}

/**
 * The token request for the spec's grant. Confidential clients authenticate with HTTP Basic
 * (client_secret_basic); public clients send `client_id` in the body. Scopes are space-joined.
 */
export function buildTokenRequest(spec: OAuth2Spec, state: OAuth2TokenState): Result<TokenRequest> {
  const url = checkTokenEndpoint(spec?.token_endpoint);
  if (!url.ok) return url;
  const form = new URLSearchParams();
  if (spec.grant_type === 'refresh_token') {
    if (state.refreshToken === undefined)
      return fail('oauth_refresh_required', 'oauth2 secret has no refreshToken');
    form.set('grant_type', 'refresh_token');
    form.set('refresh_token', state.refreshToken);
  } else if (spec.grant_type === 'client_credentials') {
    if (state.clientSecret === undefined) {
      return fail('auth_failed', 'oauth2 client_credentials grant needs a clientSecret');
    }
    form.set('grant_type', 'client_credentials');
  } else {
    return fail('auth_failed', 'oauth2.grant_type must be refresh_token or client_credentials');
  }
  if (spec.scopes !== undefined) {
    if (!Array.isArray(spec.scopes)) return fail('auth_failed', 'oauth2.scopes must be a list');
    const scopes = spec.scopes
      .map((s) => (typeof s === 'string' ? s.trim() : ''))
      .filter((s) => s.length > 0);
    if (scopes.some((s) => /[\s"\\]/.test(s)))
      return fail('auth_failed', 'oauth2.scopes entries must be single tokens');
    if (scopes.length > 0) form.set('scope', scopes.join(' '));
  }
  const headers: HeaderPair[] = [
    ['content-type', 'application/x-www-form-urlencoded'],
    ['accept', 'application/json'],
  ];
  if (state.clientSecret === undefined) {
    form.set('client_id', state.clientId);
  } else {
    const basic = Buffer.from(`${formEncode(state.clientId)}:${formEncode(state.clientSecret)}`, 'utf8');
    headers.push(['authorization', `Basic ${basic.toString('base64')}`]);
  }
  return ok({ url: url.value.href, headers, body: form.toString() });
}

/**
 * Validate a token endpoint JSON response. An OAuth `error` response → oauth_refresh_required (the grant
 * is no longer usable, e.g. `invalid_grant`); anything malformed → auth_failed.
 */
export function parseTokenResponse(json: unknown, nowMs: number): Result<TokenGrant> {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return fail('auth_failed', 'oauth2 token response must be a JSON object');
  }
  const body = json as Record<string, unknown>;
  if (body.error !== undefined) {
    const code =
      typeof body.error === 'string' && /^[\x20-\x7e]{1,64}$/.test(body.error) ? body.error : 'invalid';
    return fail('oauth_refresh_required', 'oauth2 token endpoint refused the grant', { oauthError: code });
  }
  const accessToken = body.access_token;
  if (typeof accessToken !== 'string' || accessToken.length === 0 || !isSafeHeaderValue(accessToken)) {
    return fail('auth_failed', 'oauth2 token response has no usable access_token');
  }
  if (body.token_type !== undefined && typeof body.token_type !== 'string') {
    return fail('auth_failed', 'oauth2 token response token_type must be a string');
  }
  let expiresIn = DEFAULT_EXPIRES_IN_S;
  if (body.expires_in !== undefined && body.expires_in !== null) {
    const n = typeof body.expires_in === 'string' ? Number(body.expires_in) : body.expires_in;
    if (typeof n !== 'number' || !Number.isFinite(n) || n < 0 || n > 10 * 365 * 24 * 3600) {
      return fail('auth_failed', 'oauth2 token response expires_in must be a non-negative number of seconds');
    }
    expiresIn = Math.floor(n);
  }
  const refreshToken = body.refresh_token;
  if (
    refreshToken !== undefined &&
    refreshToken !== null &&
    (typeof refreshToken !== 'string' || refreshToken === '')
  ) {
    return fail('auth_failed', 'oauth2 token response refresh_token must be a non-empty string');
  }
  return ok({
    accessToken,
    expiresAtMs: nowMs + expiresIn * 1000,
    ...(typeof refreshToken === 'string' ? { refreshToken } : {}),
  });
}

/**
 * True when the cached access token is missing or expires within `skewMs`. A token with no known expiry is
 * used as is (an upstream 401 forces one refresh).
 */
export function needsRefresh(
  state: Pick<OAuth2TokenState, 'accessToken' | 'accessTokenExpiresAtMs'>,
  nowMs: number,
  skewMs: number = DEFAULT_REFRESH_SKEW_MS,
): boolean {
  if (state.accessToken === undefined || state.accessToken.length === 0) return true;
  if (state.accessTokenExpiresAtMs === undefined) return false;
  return nowMs + skewMs >= state.accessTokenExpiresAtMs;
}

/**
 * `extra_inject` headers, whose templates may use only the spec's `identity_fields` (non-secret fields of
 * the stored JSON). A field the state itself is read from (tokens, client secret) is refused there.
 */
function compileExtraInject(
  spec: OAuth2Spec,
): Result<{ readonly name: string; readonly template: CompiledTemplate }[]> {
  const fields = spec.identity_fields ?? [];
  if (!Array.isArray(fields) || fields.some((f) => typeof f !== 'string' || STATE_FIELDS.has(f))) {
    return fail('auth_failed', 'oauth2.identity_fields must name non-secret fields of the token secret');
  }
  const list = spec.extra_inject ?? [];
  if (!Array.isArray(list)) return fail('auth_failed', 'oauth2.extra_inject must be a list');
  const out: { name: string; template: CompiledTemplate }[] = [];
  for (const h of list) {
    const name = checkHeaderName(h?.header_name, 'oauth2.extra_inject.header_name');
    if (!name.ok) return name;
    const compiled = compileTemplate(h.value_template, 'oauth2.extra_inject.value_template');
    if (!compiled.ok) return compiled;
    const template = restrictPlaceholders(compiled.value, fields, 'oauth2.extra_inject.value_template');
    if (!template.ok) return template;
    out.push({ name: name.value, template: template.value });
  }
  return ok(out);
}

export const oauth2Strategy = {
  type: 'oauth2',
  create(spec, _params, env) {
    if (spec?.grant_type !== 'refresh_token' && spec?.grant_type !== 'client_credentials') {
      return fail('auth_failed', 'oauth2.grant_type must be refresh_token or client_credentials');
    }
    const endpoint = checkTokenEndpoint(spec.token_endpoint);
    if (!endpoint.ok) return endpoint;
    const inject = spec.inject ?? DEFAULT_OAUTH2_INJECT;
    const name = checkHeaderName(inject?.header_name, 'oauth2.inject.header_name');
    if (!name.ok) return name;
    const compiled = compileTemplate(inject.value_template, 'oauth2.inject.value_template');
    if (!compiled.ok) return compiled;
    const template = restrictPlaceholders(compiled.value, ['access_token'], 'oauth2.inject.value_template');
    if (!template.ok) return template;
    const headerName = name.value;
    const extra = compileExtraInject(spec);
    if (!extra.ok) return extra;
    const now = env?.now ?? Date.now;
    return ok(async (_input, secrets) => {
      const state = readOAuth2State(secrets, spec);
      if (!state.ok) return state;
      const { accessToken, accessTokenExpiresAtMs } = state.value;
      if (accessToken === undefined) {
        return fail('oauth_refresh_required', 'oauth2 access token missing; refresh before injecting');
      }
      if (accessTokenExpiresAtMs !== undefined && accessTokenExpiresAtMs <= now()) {
        return fail('oauth_refresh_required', 'oauth2 access token expired; refresh before injecting');
      }
      const value = renderHeaderValue(
        template.value,
        (n) => (n === 'access_token' ? accessToken : undefined),
        'oauth2.inject.value_template',
      );
      if (!value.ok) return value;
      const setHeaders: HeaderPair[] = [[headerName, value.value]];
      for (const h of extra.value) {
        const v = renderHeaderValue(
          h.template,
          (n) => secrets.first(n),
          'oauth2.extra_inject.value_template',
        );
        if (!v.ok) return v;
        setHeaders.push([h.name, v.value]);
      }
      return ok({ setHeaders, appendQuery: [], urlSecrets: [] });
    });
  },
  headerNames: (spec) => {
    const names = [(spec?.inject ?? DEFAULT_OAUTH2_INJECT).header_name];
    for (const h of Array.isArray(spec?.extra_inject) ? spec.extra_inject : []) names.push(h?.header_name);
    return names.filter((n): n is string => typeof n === 'string').map((n) => n.toLowerCase());
  },
  queryNames: () => [],
} satisfies AuthStrategy<'oauth2'>;

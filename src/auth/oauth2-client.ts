/**
 * OAuth 2 token lifecycle with I/O injected: refresh when needed (single-flight per credential), persist the
 * new token state through the caller's `persist` (atomic vault write-back), and force one refresh after an
 * upstream 401. The HTTP transport is a parameter so the token request goes through the same policy-checked
 * dispatcher (SSRF guard, dev overrides) as every upstream call. Never logs tokens.
 */
import { fail, ok, type Result } from '../errors.js';
import {
  applyTokenGrant,
  buildTokenRequest,
  needsRefresh,
  parseTokenResponse,
  serializeOAuth2Secret,
  DEFAULT_REFRESH_SKEW_MS,
  type OAuth2Spec,
  type OAuth2TokenState,
  type TokenRequest,
} from './oauth2.js';

export interface TokenHttpResponse {
  readonly status: number;
  readonly body: string;
}

/** POSTs `request` (url, headers, form body) and returns status + body text. May throw on network errors. */
export type TokenTransport = (request: TokenRequest) => Promise<TokenHttpResponse>;

/** Largest token response we parse. */
export const MAX_TOKEN_RESPONSE_CHARS = 64 * 1024;

/** One token exchange: request → validated, merged state (not persisted). */
export async function refreshOAuth2Token(
  spec: OAuth2Spec,
  state: OAuth2TokenState,
  transport: TokenTransport,
  nowMs: number,
): Promise<Result<OAuth2TokenState>> {
  const request = buildTokenRequest(spec, state);
  if (!request.ok) return request;
  let response: TokenHttpResponse;
  try {
    response = await transport(request.value);
  } catch {
    return fail('upstream_unreachable', 'oauth2 token endpoint could not be reached');
  }
  if (response.body.length > MAX_TOKEN_RESPONSE_CHARS) {
    return fail('auth_failed', 'oauth2 token response is too large');
  }
  let json: unknown;
  try {
    json = JSON.parse(response.body);
  } catch {
    json = undefined;
  }
  const isOAuthError = typeof json === 'object' && json !== null && 'error' in json;
  if (response.status < 200 || response.status >= 300) {
    if ((response.status === 400 || response.status === 401) && isOAuthError) {
      return parseTokenResponse(json, nowMs) as Result<never>;
    }
    return fail('oauth_refresh_required', 'oauth2 token endpoint rejected the refresh', {
      status: response.status,
    });
  }
  if (json === undefined) return fail('auth_failed', 'oauth2 token response must be JSON');
  const grant = parseTokenResponse(json, nowMs);
  if (!grant.ok) return grant;
  return ok(applyTokenGrant(state, grant.value));
}

export interface OAuth2TokenManagerOptions {
  readonly transport: TokenTransport;
  /** Atomically write the new secret JSON back to the vault (called before the token is used). */
  readonly persist: (credentialId: string, secretJson: string) => Promise<void>;
  readonly now?: () => number;
  readonly skewMs?: number;
}

export interface OAuth2TokenManager {
  /**
   * A state with a usable access token: the given one if still fresh, else a refreshed + persisted one.
   * `force` refreshes regardless (after an upstream 401). Concurrent calls per credential share one refresh.
   */
  ensureFresh(
    credentialId: string,
    spec: OAuth2Spec,
    state: OAuth2TokenState,
    options?: { readonly force?: boolean },
  ): Promise<Result<OAuth2TokenState>>;
}

export function createOAuth2TokenManager(options: OAuth2TokenManagerOptions): OAuth2TokenManager {
  const now = options.now ?? Date.now;
  const skew = options.skewMs ?? DEFAULT_REFRESH_SKEW_MS;
  const inflight = new Map<string, Promise<Result<OAuth2TokenState>>>();

  async function refresh(credentialId: string, spec: OAuth2Spec, state: OAuth2TokenState) {
    const next = await refreshOAuth2Token(spec, state, options.transport, now());
    if (!next.ok) return next;
    try {
      await options.persist(credentialId, serializeOAuth2Secret(next.value));
    } catch {
      return fail('vault_unavailable', 'oauth2 token could not be written back to the vault');
    }
    return next;
  }

  return {
    ensureFresh(credentialId, spec, state, opts) {
      if (opts?.force !== true && !needsRefresh(state, now(), skew)) return Promise.resolve(ok(state));
      const running = inflight.get(credentialId);
      if (running !== undefined) return running;
      const task = refresh(credentialId, spec, state).finally(() => inflight.delete(credentialId));
      inflight.set(credentialId, task);
      return task;
    },
  };
}

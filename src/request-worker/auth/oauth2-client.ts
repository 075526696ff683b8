/**
 * OAuth 2 token lifecycle with I/O injected: refresh when needed (single-flight per key in this thread, and
 * across threads through an injected lease on the stored secret), write the new token state back while
 * holding that lease (atomic vault write-back), and force one refresh after an upstream 401. The HTTP
 * transport is a parameter so the token request goes through the same policy-checked dispatcher (SSRF
 * guard, dev overrides) as every upstream call. Never logs tokens.
 */
import { createHash } from 'node:crypto';
import { AivaultError, fail, ok, type Result } from '../../core/errors.js';
import {
  applyTokenGrant,
  buildTokenRequest,
  needsRefresh,
  parseOAuth2Secret,
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
  const host = new URL(request.value.url).host;
  let response: TokenHttpResponse;
  try {
    response = await transport(request.value);
  } catch (err) {
    // The SSRF guard's refusal stays a policy violation; anything else means "cannot refresh right now".
    if (err instanceof AivaultError && err.code === 'policy_violation') return fail(err.code, err.message);
    return fail(
      'oauth_refresh_required',
      `oauth2 token endpoint ${host} could not be reached, so the expired access token was not refreshed; ` +
        'retry later (if it persists, check the provider status or redo the OAuth consent)',
    );
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
    return fail(
      'oauth_refresh_required',
      `oauth2 token endpoint ${host} answered HTTP ${response.status}, so the access token was not refreshed`,
      { status: response.status },
    );
  }
  if (json === undefined) return fail('auth_failed', 'oauth2 token response must be JSON');
  const grant = parseTokenResponse(json, nowMs);
  if (!grant.ok) return grant;
  return ok(applyTokenGrant(state, grant.value));
}

/**
 * Exclusive access to one stored token secret across every thread that may refresh it (in the daemon the
 * crypto worker grants leases, so all request workers queue on the same one). `current` is the secret's
 * value read AFTER the lease was granted: another holder may have refreshed it in the meantime.
 */
export interface TokenLease {
  readonly current: string;
  /** Write `value` back atomically (when given), then release. Called exactly once per lease. */
  release(value?: string): Promise<void>;
}

export interface OAuth2TokenManagerOptions {
  readonly transport: TokenTransport;
  /**
   * Cross-thread coordination: lease the stored secret, re-read it, refresh only if still needed, write back
   * while holding the lease. Preferred over `persist`.
   */
  readonly acquire?: (key: string) => Promise<TokenLease>;
  /** Without `acquire`: atomically write the new secret JSON back to the vault (before the token is used). */
  readonly persist?: (key: string, secretJson: string) => Promise<void>;
  readonly now?: () => number;
  readonly skewMs?: number;
  /** Backoff after a failed refresh (token endpoint down/refusing): first delay, doubled up to the max. */
  readonly failureBackoffMs?: { readonly initial: number; readonly max: number };
}

export const DEFAULT_FAILURE_BACKOFF_MS = { initial: 1_000, max: 30_000 } as const;
/**
 * A token obtained by a forced refresh (after an upstream 401) is not force-refreshed again for this
 * long: an upstream that rejects fresh tokens (missing scope, wrong audience) would otherwise cost one
 * token request per call. The 401 goes back to the caller instead.
 */
export const FORCED_REFRESH_MIN_INTERVAL_MS = 10_000;

/** A refreshed state, stamped when the refresh was forced by a 401 (see FORCED_REFRESH_MIN_INTERVAL_MS). */
function stampIfForced(state: OAuth2TokenState, force: boolean, nowMs: number): OAuth2TokenState {
  return force ? { ...state, accessTokenForcedAtMs: nowMs } : state;
}

function recentlyForced(state: OAuth2TokenState, nowMs: number): boolean {
  const at = state.accessTokenForcedAtMs;
  return at !== undefined && nowMs - at >= 0 && nowMs - at < FORCED_REFRESH_MIN_INTERVAL_MS;
}

/** Failures worth backing off from: the token endpoint's answers or absence, not local vault errors. */
const BACKOFF_CODES: ReadonlySet<string> = new Set(['oauth_refresh_required', 'auth_failed']);

/** Which grant a failure belongs to: a changed refresh token or client secret retries at once. */
function grantFingerprint(state: OAuth2TokenState): string {
  return createHash('sha256')
    .update(JSON.stringify([state.clientId, state.clientSecret ?? '', state.refreshToken ?? '']))
    .digest('base64');
}

export interface OAuth2TokenManager {
  /**
   * A state with a usable access token: the given one if still fresh, else a refreshed + persisted one.
   * `force` refreshes regardless (after an upstream 401) unless the stored token already differs from the
   * rejected one (someone else refreshed meanwhile). Concurrent calls per key share one refresh.
   */
  ensureFresh(
    key: string,
    spec: OAuth2Spec,
    state: OAuth2TokenState,
    options?: { readonly force?: boolean },
  ): Promise<Result<OAuth2TokenState>>;
}

function asFailure(err: unknown, fallback: string): Result<never> {
  if (err instanceof AivaultError) return fail(err.code, err.message);
  return fail('vault_unavailable', fallback);
}

export function createOAuth2TokenManager(options: OAuth2TokenManagerOptions): OAuth2TokenManager {
  const now = options.now ?? Date.now;
  const skew = options.skewMs ?? DEFAULT_REFRESH_SKEW_MS;
  const inflight = new Map<string, Promise<Result<OAuth2TokenState>>>();
  const backoff = options.failureBackoffMs ?? DEFAULT_FAILURE_BACKOFF_MS;
  /**
   * Per key: the last refresh failure, so a dead or refusing token endpoint is not hit by every call (many
   * agents in parallel would otherwise send it hundreds of requests a second and get the OAuth client
   * throttled or banned). Cleared by a success or a changed grant.
   */
  const failures = new Map<
    string,
    { grant: string; untilMs: number; delayMs: number; error: AivaultError }
  >();

  function backedOff(key: string, state: OAuth2TokenState): Result<never> | undefined {
    const f = failures.get(key);
    if (!f || f.untilMs <= now() || f.grant !== grantFingerprint(state)) return undefined;
    const waitS = Math.ceil((f.untilMs - now()) / 1000);
    return fail(f.error.code, `${f.error.message} (next attempt in ${waitS} s)`, f.error.details);
  }

  function remember(key: string, state: OAuth2TokenState, result: Result<OAuth2TokenState>): void {
    if (result.ok) {
      failures.delete(key);
      return;
    }
    if (!BACKOFF_CODES.has(result.error.code)) return;
    const grant = grantFingerprint(state);
    const prev = failures.get(key);
    const delayMs = prev && prev.grant === grant ? Math.min(prev.delayMs * 2, backoff.max) : backoff.initial;
    failures.set(key, { grant, untilMs: now() + delayMs, delayMs, error: result.error });
  }

  async function refreshAndPersist(
    key: string,
    spec: OAuth2Spec,
    state: OAuth2TokenState,
    force: boolean,
  ): Promise<Result<OAuth2TokenState>> {
    const refreshed = await refreshOAuth2Token(spec, state, options.transport, now());
    if (!refreshed.ok) return refreshed;
    const next = stampIfForced(refreshed.value, force, now());
    if (!options.persist)
      return fail('vault_unavailable', 'oauth2 token cannot be written back to the vault');
    try {
      await options.persist(key, serializeOAuth2Secret(next));
    } catch {
      return fail('vault_unavailable', 'oauth2 token could not be written back to the vault');
    }
    return ok(next);
  }

  async function refreshLeased(
    acquire: (key: string) => Promise<TokenLease>,
    key: string,
    spec: OAuth2Spec,
    seen: OAuth2TokenState,
    force: boolean,
  ): Promise<Result<OAuth2TokenState>> {
    let lease: TokenLease;
    try {
      lease = await acquire(key);
    } catch (err) {
      return asFailure(err, 'oauth2 token secret could not be locked for refresh');
    }
    let released = false;
    const release = async (value?: string): Promise<void> => {
      released = true;
      await lease.release(value);
    };
    try {
      const stored = parseOAuth2Secret(lease.current, spec);
      if (!stored.ok) return stored;
      // Someone refreshed while we waited: use theirs (a forced refresh only replaces the rejected token).
      const rejected = force ? seen.accessToken : undefined;
      const storedToken = stored.value.accessToken;
      if (storedToken !== undefined && storedToken !== rejected && !needsRefresh(stored.value, now(), skew)) {
        await release();
        return stored;
      }
      // The rejected token itself came from a forced refresh moments ago (another worker's): keep it.
      if (
        force &&
        storedToken === rejected &&
        recentlyForced(stored.value, now()) &&
        !needsRefresh(stored.value, now(), skew)
      ) {
        await release();
        return stored;
      }
      // Refresh from the STORED state: it carries the latest (possibly rotated) refresh token.
      const refreshed = await refreshOAuth2Token(spec, stored.value, options.transport, now());
      if (!refreshed.ok) return refreshed;
      const next = stampIfForced(refreshed.value, force, now());
      try {
        await release(serializeOAuth2Secret(next));
      } catch (err) {
        return asFailure(err, 'oauth2 token could not be written back to the vault');
      }
      return ok(next);
    } finally {
      if (!released) await lease.release().catch(() => undefined);
    }
  }

  return {
    ensureFresh(key, spec, state, opts) {
      const force = opts?.force === true;
      if (!needsRefresh(state, now(), skew) && (!force || recentlyForced(state, now())))
        return Promise.resolve(ok(state));
      const running = inflight.get(key);
      if (running !== undefined) return running;
      const refused = backedOff(key, state);
      if (refused) return Promise.resolve(refused);
      const task = (
        options.acquire
          ? refreshLeased(options.acquire, key, spec, state, force)
          : refreshAndPersist(key, spec, state, force)
      )
        .then((result) => {
          remember(key, state, result);
          return result;
        })
        .finally(() => inflight.delete(key));
      inflight.set(key, task);
      return task;
    },
  };
}

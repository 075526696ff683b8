/**
 * OAuth2 runtime for the pipeline: keeps the access token fresh and refreshes it ONCE per expiry across the
 * whole daemon. Every refresh runs under an exclusive lease on the token secret (granted by the crypto
 * worker, which all request workers share): the holder re-reads the stored secret, refreshes only if it is
 * still stale, and writes the new state back (the crypto worker encrypts it) before the lease passes on; the
 * next holder then sees the fresh token and does not refresh. Token requests go through the same guarded
 * undici transport as upstream calls (connect-time address checks, dev overrides). The token endpoint comes
 * from `plan.auth`, i.e. from the compiled registry for registry/pinned credentials. Never logs tokens.
 */
import { AivaultError } from '../../core/errors.js';
import type { DevOverrides } from '../../core/config/env.js';
import {
  createOAuth2TokenManager,
  MAX_TOKEN_RESPONSE_CHARS,
  type OAuth2TokenManager,
  type TokenLease,
  type TokenTransport,
} from '../auth/oauth2-client.js';
import { parseOAuth2Secret, serializeOAuth2Secret, type OAuth2Spec } from '../auth/oauth2.js';
import { tokenChangedDuringRefresh } from '../../core/threads/crypto-protocol.js';
import type { OAuth2Refresher, SecretSource } from './types.js';
import type { Upstream } from './upstream.js';

/** A token request that has not answered by then counts as "endpoint unreachable". */
export const TOKEN_REQUEST_TIMEOUT_MS = 20_000;

export function transportVia(upstream: Upstream, timeoutMs = TOKEN_REQUEST_TIMEOUT_MS): TokenTransport {
  return async (req) => {
    const url = new URL(req.url);
    if (url.protocol !== 'https:')
      throw new AivaultError('policy_violation', 'oauth2 token endpoint must be https');
    const signal = AbortSignal.timeout(timeoutMs);
    const res = await upstream.request({
      host: url.hostname,
      port: url.port ? Number(url.port) : 443,
      method: 'POST',
      pathAndQuery: `${url.pathname}${url.search}`,
      headers: [
        ...req.headers.filter(([n]) => n !== 'content-type'),
        ['content-type', 'application/x-www-form-urlencoded'],
      ],
      body: req.body,
      signal,
    });
    let text = '';
    for await (const chunk of res.body) {
      text += (chunk as Buffer).toString('utf8');
      if (text.length > MAX_TOKEN_RESPONSE_CHARS) {
        res.body.destroy();
        throw new AivaultError('auth_failed', 'oauth2 token response is too large');
      }
    }
    return { status: res.statusCode, body: text };
  };
}

/**
 * Lease over a SecretSource: the source's own (cross-thread) lease when it has one, else a lock local to
 * this thread around decrypt + write (in-process mode, where this thread is the only refresher).
 */
export function leaseVia(secrets: SecretSource): (secretId: string) => Promise<TokenLease> {
  if (secrets.lease) {
    const lease = secrets.lease.bind(secrets);
    return async (secretId) => {
      const held = await lease(secretId);
      return { current: held.value, release: (value) => held.release(value) };
    };
  }
  const tails = new Map<string, Promise<void>>();
  return async (secretId) => {
    const previous = tails.get(secretId) ?? Promise.resolve();
    let unlock!: () => void;
    const mine = new Promise<void>((r) => (unlock = r));
    const tail = previous.then(() => mine);
    tails.set(secretId, tail);
    await previous;
    const done = (): void => {
      if (tails.get(secretId) === tail) tails.delete(secretId);
      unlock();
    };
    let current: string | undefined;
    let revision: string | undefined;
    try {
      // Revision first: a write landing between the two reads then makes the CAS fail (safe), never pass.
      revision = await secrets.revision?.(secretId);
      current = (await secrets.decrypt([secretId])).get(secretId);
    } catch (err) {
      done();
      throw err;
    }
    if (current === undefined) {
      done();
      throw new AivaultError('vault_unavailable', `secret ${secretId} no longer exists`);
    }
    return {
      current,
      async release(value) {
        try {
          if (value !== undefined) {
            if (revision !== undefined && secrets.writeIfUnchanged) {
              if (!(await secrets.writeIfUnchanged(secretId, revision, value)))
                throw tokenChangedDuringRefresh();
            } else {
              if (!secrets.write)
                throw new AivaultError('vault_unavailable', 'cannot write the refreshed token back');
              await secrets.write(secretId, value);
            }
          }
        } finally {
          done();
        }
      },
    };
  };
}

/** The Codex (ChatGPT login) token endpoint, as in registry/openai.json's credential alternative. */
export const CODEX_OAUTH_TOKEN_ENDPOINT = 'https://auth.openai.com/oauth/token';

/**
 * A verified dev vault may send the Codex OAuth refresh to a local endpoint
 * (AIVAULT_DEV_CODEX_OAUTH_TOKEN_ENDPOINT); `dev` is undefined on every other vault, so a production
 * vault ignores the variable like every AIVAULT_DEV_* override.
 */
function withDevTokenEndpoint(spec: OAuth2Spec, dev: DevOverrides | undefined): OAuth2Spec {
  const endpoint = dev?.codexOAuthTokenEndpoint;
  if (endpoint === undefined || spec.token_endpoint !== CODEX_OAUTH_TOKEN_ENDPOINT) return spec;
  return { ...spec, token_endpoint: endpoint };
}

export function createOAuth2Refresher(
  secrets: SecretSource,
  upstream: (dev: DevOverrides | undefined) => Upstream,
  failureBackoffMs?: { readonly initial: number; readonly max: number },
): OAuth2Refresher {
  const managers = new Map<string, OAuth2TokenManager>();
  const acquire = leaseVia(secrets);
  const managerFor = (dev: DevOverrides | undefined): OAuth2TokenManager => {
    const key = dev ? 'dev' : 'prod';
    let m = managers.get(key);
    if (!m) {
      // Keyed by SECRET id: two credentials sharing one token secret share its refreshes too.
      m = createOAuth2TokenManager({
        transport: transportVia(upstream(dev)),
        acquire,
        ...(failureBackoffMs ? { failureBackoffMs } : {}),
      });
      managers.set(key, m);
    }
    return m;
  };
  return {
    async ensure(plan, bySlot, dev, force) {
      const spec = withDevTokenEndpoint((plan.auth as { oauth2: OAuth2Spec }).oauth2, dev);
      const slots = Object.entries(plan.secretRefs);
      const only = slots.length === 1 ? slots[0] : undefined;
      if (!only)
        throw new AivaultError(
          'auth_failed',
          `oauth2 credential ${plan.credentialId} must have exactly one secret`,
        );
      const [slot, secretId] = only;
      const state = parseOAuth2Secret(bySlot[slot] ?? '', spec);
      if (!state.ok) throw state.error;
      const fresh = await managerFor(dev).ensureFresh(secretId, spec, state.value, { force });
      if (!fresh.ok) throw fresh.error;
      // Same access token (still fresh, or a forced refresh declined): `bySlot` itself, so a caller can tell.
      if (fresh.value.accessToken === state.value.accessToken) return bySlot;
      return { ...bySlot, [slot]: serializeOAuth2Secret(fresh.value) };
    },
  };
}

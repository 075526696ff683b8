/**
 * OAuth2 runtime for the pipeline: keeps the access token fresh (single-flight per credential), writes the
 * refreshed token state back to the vault through the SecretSource (the crypto worker encrypts it), and
 * sends token requests through the same guarded undici transport as upstream calls (connect-time address
 * checks, dev overrides). Never logs tokens.
 */
import { AivaultError } from '../errors.js';
import type { DevOverrides } from '../config/env.js';
import type { Plan } from '../broker/types.js';
import {
  createOAuth2TokenManager,
  MAX_TOKEN_RESPONSE_CHARS,
  type OAuth2TokenManager,
  type TokenTransport,
} from '../auth/oauth2-client.js';
import { parseOAuth2Secret, serializeOAuth2Secret, type OAuth2Spec } from '../auth/oauth2.js';
import type { SecretSource } from './invoke.js';
import type { Upstream } from './upstream.js';

export interface OAuth2Refresher {
  /** bySlot with the oauth2 secret replaced by a state holding a fresh access token. */
  ensure(
    plan: Plan,
    bySlot: Readonly<Record<string, string>>,
    dev: DevOverrides | undefined,
    force: boolean,
  ): Promise<Record<string, string>>;
}

function transportVia(upstream: Upstream): TokenTransport {
  return async (req) => {
    const url = new URL(req.url);
    if (url.protocol !== 'https:')
      throw new AivaultError('policy_violation', 'oauth2 token endpoint must be https');
    const res = await upstream.request({
      host: url.hostname,
      port: url.port ? Number(url.port) : 443,
      method: 'POST',
      pathAndQuery: `${url.pathname}${url.search}`,
      headers: [...req.headers, ['content-type', 'application/x-www-form-urlencoded']],
      body: req.body,
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

export function createOAuth2Refresher(
  secrets: SecretSource,
  upstream: (dev: DevOverrides | undefined) => Upstream,
): OAuth2Refresher {
  const managers = new Map<string, OAuth2TokenManager>();
  let secretForCredential = new Map<string, string>();
  const managerFor = (dev: DevOverrides | undefined): OAuth2TokenManager => {
    const key = dev ? 'dev' : 'prod';
    let m = managers.get(key);
    if (!m) {
      m = createOAuth2TokenManager({
        transport: transportVia(upstream(dev)),
        persist: async (credentialId, json) => {
          const id = secretForCredential.get(credentialId);
          if (!id || !secrets.write)
            throw new AivaultError('vault_unavailable', 'cannot write the token back');
          await secrets.write(id, json);
        },
      });
      managers.set(key, m);
    }
    return m;
  };
  return {
    async ensure(plan, bySlot, dev, force) {
      const spec = (plan.auth as { oauth2: OAuth2Spec }).oauth2;
      const slots = Object.entries(plan.secretRefs);
      const only = slots.length === 1 ? slots[0] : undefined;
      if (!only)
        throw new AivaultError(
          'auth_failed',
          `oauth2 credential ${plan.credentialId} must have exactly one secret`,
        );
      const [slot, secretId] = only;
      const state = parseOAuth2Secret(bySlot[slot] ?? '');
      if (!state.ok) throw state.error;
      secretForCredential = new Map(secretForCredential).set(plan.credentialId, secretId);
      const fresh = await managerFor(dev).ensureFresh(plan.credentialId, spec, state.value, { force });
      if (!fresh.ok) throw fresh.error;
      return { ...bySlot, [slot]: serializeOAuth2Secret(fresh.value) };
    },
  };
}

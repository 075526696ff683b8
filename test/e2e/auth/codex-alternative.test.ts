/**
 * OpenAI credential alternatives (reference `credentialAlternatives`): a ChatGPT (Codex CLI) login stored as
 * CODEX_OAUTH_JSON serves OpenAI's Codex capabilities on chatgpt.com with its own auth and path prefix,
 * while OPENAI_API_KEY keeps serving everything else. Through a real aivaultd: the Codex token endpoint is
 * replaced by a local mock with AIVAULT_DEV_CODEX_OAUTH_TOKEN_ENDPOINT (honoured on this dev vault only),
 * and chatgpt.com / api.openai.com are dev-mapped to the same local HTTPS mock.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { afterSecretCreated } from '../../../src/cli/provisioning.js';
import { loadCatalog, catalogPaths } from '../../../src/stores/catalog/index.js';
import { registry } from '../../../src/core/registry/index.js';
import { toSecretInfo, vaultPaths } from '../../../src/stores/vault/index.js';
import { startHttpsUpstream, type HttpsUpstream } from '../../support/https-upstream.js';
import { issueServerCert } from '../../support/test-ca.js';
import { createDevVault, startDaemonFor, type DevVault } from '../../support/dev-vault.js';
import { rejection } from './fixture.js';

const HOSTS = ['chatgpt.com', 'codex-auth.test', 'api.openai.com'];
const API_KEY = 'sk-codex-e2e-api-key-31337';
const REFRESH = 'codex-e2e-refresh-token-Zq7';
const ACCOUNT = 'acct-codex-e2e-42';

let upstream: HttpsUpstream;
let dv: DevVault;
let d: Awaited<ReturnType<typeof startDaemonFor>>;
let codexId = '';

async function addSecret(name: string, value: string): Promise<string> {
  const meta = await dv.vault.createSecret({ name, value, scope: { kind: 'global' } });
  await afterSecretCreated(dv.config, dv.vault, meta);
  return meta.id;
}

async function stored(): Promise<Record<string, unknown>> {
  const v = await dv.vault.decryptSecret(codexId);
  try {
    return JSON.parse(v.reveal()) as Record<string, unknown>;
  } finally {
    v.dispose();
  }
}

const last = (path: string) => upstream.requests.filter((r) => r.path === path).at(-1);

beforeAll(async () => {
  upstream = await startHttpsUpstream(issueServerCert(HOSTS));
  dv = await createDevVault({
    prefix: 'aivault-codex-e2e-',
    upstream: upstream.port,
    hosts: HOSTS,
    env: { AIVAULT_DEV_CODEX_OAUTH_TOKEN_ENDPOINT: 'https://codex-auth.test/oauth/token' },
  });
  d = await startDaemonFor(dv.config);
  await addSecret('OPENAI_API_KEY', API_KEY);
  codexId = await addSecret(
    'CODEX_OAUTH_JSON',
    JSON.stringify({
      access_token: 'expired-codex-access',
      refresh_token: REFRESH,
      expires_at: Date.now() - 60_000,
      account_id: ACCOUNT,
      email: 'dev@example.test',
    }),
  );
}, 60_000);

afterAll(async () => {
  await d?.stop();
  dv?.close();
  await upstream?.close();
});

describe('OpenAI Codex credential alternative', () => {
  it('auto-provisions one credential per alternative, each serving only its capabilities', async () => {
    const secrets = (await dv.vault.listSecrets()).map(toSecretInfo);
    const snap = await loadCatalog(catalogPaths(vaultPaths(dv.config).root), registry, secrets);
    expect(snap.credentials.get('openai-codex-oauth')).toMatchObject({
      alternative: 'codex-oauth',
      hosts: ['chatgpt.com'],
      capabilities: ['openai/codex-responses', 'openai/codex-realtime'],
      priority: 100,
      upstreamPathPrefix: '/backend-api/codex',
    });
    expect(snap.credentials.get('openai-codex-oauth-usage')?.upstreamPathPrefix).toBe('/backend-api');
    expect(snap.credentials.get('openai')?.capabilities).toBeUndefined();
  });

  it('refreshes the expired login at the (dev) token endpoint and calls chatgpt.com under the prefix', async () => {
    const res = await d.client.invoke({
      capability: 'openai/codex-responses',
      request: { method: 'POST', path: '/responses', body: '{"model":"gpt-5-codex","input":"hi"}' },
    });
    expect(res.status).toBe(200);
    const token = last('/oauth/token');
    expect(token?.headers.host).toBe('codex-auth.test');
    const form = new URLSearchParams(token?.body);
    expect(form.get('grant_type')).toBe('refresh_token');
    expect(form.get('refresh_token')).toBe(REFRESH);
    expect(form.get('client_id')).toBe('app_EMoamEEZ73f0CkXaXp7hrann');
    const call = last('/backend-api/codex/responses');
    expect(call?.headers.host).toBe('chatgpt.com');
    expect(call?.headers.authorization).toBe(`Bearer at-${upstream.tokens.issued}`);
    expect(call?.headers['chatgpt-account-id']).toBe(ACCOUNT);
    // Written back: the new token, the login's own fields kept, no client id added to the secret.
    const after = await stored();
    expect(after).toMatchObject({ accessToken: `at-${upstream.tokens.issued}`, account_id: ACCOUNT });
    expect(after.email).toBe('dev@example.test');
    expect(after.clientId).toBeUndefined();
    expect(after.accessTokenExpiresAtMs).toBeGreaterThan(Date.now());
  });

  it('the usage capability goes through the second alternative with its own prefix', async () => {
    const res = await d.client.invoke({
      capability: 'openai/codex-usage',
      request: { method: 'GET', path: '/wham/usage' },
    });
    expect(res.status).toBe(200);
    expect(last('/backend-api/wham/usage')?.headers['chatgpt-account-id']).toBe(ACCOUNT);
  });

  it('other OpenAI capabilities keep the API key; the login never serves them', async () => {
    const res = await d.client.invoke({
      capability: 'openai/models',
      request: { method: 'GET', path: '/v1/models' },
    });
    expect(res.status).toBe(200);
    const call = last('/v1/models');
    expect(call?.headers.host).toBe('api.openai.com');
    expect(call?.headers.authorization).toBe(`Bearer ${API_KEY}`);
    const named = await rejection(() =>
      d.client.invoke({
        capability: 'openai/models',
        credential: 'openai-codex-oauth',
        request: { method: 'GET', path: '/v1/models' },
      }),
    );
    expect(named.code).toBe('policy_violation');
  });
});

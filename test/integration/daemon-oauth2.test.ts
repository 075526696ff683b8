import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogPaths, createCapability, createCredential } from '../../src/stores/catalog/index.js';
import { registry } from '../../src/core/registry/index.js';
import { readSecretRecord, toSecretInfo, toSecretMeta, vaultPaths } from '../../src/stores/vault/index.js';
import { envelope, json, startFixture, type DaemonFixture } from './daemon-fixture.js';

let fx: DaemonFixture;
let secretId: string;
beforeAll(async () => {
  fx = await startFixture({ workers: 2 });
  const secret = await fx.vault.createSecret({
    name: 'OAUTH_APP',
    value: JSON.stringify({ clientId: 'cid', clientSecret: 'csecret', refreshToken: 'rtoken' }),
    scope: { kind: 'global' },
  });
  secretId = secret.id;
  const info = toSecretInfo(toSecretMeta(await readSecretRecord(vaultPaths(fx.config), secret.id)));
  const paths = catalogPaths(fx.config.vaultDir);
  await createCredential(
    paths,
    registry,
    {
      id: 'oauthy',
      provider: 'oauthy',
      secretRef: `vault:secret:${secret.id}`,
      auth: { oauth2: { grant_type: 'refresh_token', token_endpoint: 'https://upstream.test/oauth/token' } },
      hosts: ['upstream.test'],
    },
    { secrets: [info] },
  );
  await createCapability(
    paths,
    registry,
    { id: 'oauthy/api', credentialId: 'oauthy', methods: ['GET'], pathPrefixes: ['/'] },
    { secrets: [info] },
  );
}, 60_000);
afterAll(() => fx?.close());

async function storedState(): Promise<Record<string, unknown>> {
  const value = await fx.vault.decryptSecret(secretId);
  try {
    return JSON.parse(value.reveal()) as Record<string, unknown>;
  } finally {
    value.dispose();
  }
}

describe('aivaultd oauth2 runtime', () => {
  it('refreshes, injects the access token, and writes the new state back to the vault', async () => {
    const res = await fx.client.invoke(envelope('/needs-token', 'GET', 'oauthy/api'));
    expect(res.status).toBe(200);
    const seen = json<{ headers: Record<string, string> }>(res.body);
    expect(seen.headers.authorization).toBe('Bearer at-1');
    const tokenReq = fx.upstream.requests.find((r) => r.path === '/oauth/token');
    expect(tokenReq?.body).toContain('grant_type=refresh_token');
    expect(fx.upstream.tokens.issued).toBe(1);
    expect(await storedState()).toMatchObject({
      clientId: 'cid',
      refreshToken: 'rtoken',
      accessToken: 'at-1',
    });
  });

  it('reuses the cached token from the vault (no new token request)', async () => {
    const res = await fx.client.invoke(envelope('/needs-token', 'GET', 'oauthy/api'));
    expect(res.status).toBe(200);
    expect(fx.upstream.tokens.issued).toBe(1);
  });

  it('forces one refresh and retries once after an upstream 401', async () => {
    fx.upstream.tokens.required = 2;
    const before = fx.upstream.requests.filter((r) => r.path === '/needs-token').length;
    const res = await fx.client.invoke(envelope('/needs-token', 'GET', 'oauthy/api'));
    expect(res.status).toBe(200);
    expect(json<{ headers: Record<string, string> }>(res.body).headers.authorization).toBe('Bearer at-2');
    expect(fx.upstream.requests.filter((r) => r.path === '/needs-token').length - before).toBe(2);
    expect((await storedState()).accessToken).toBe('at-2');
  });

  it('the token secret never appears in the caller response headers', async () => {
    const res = await fx.client.invoke(envelope('/leaky-headers', 'GET', 'oauthy/api'));
    expect(JSON.stringify(res.headers)).not.toMatch(/at-\d|rtoken|csecret/);
  });
});

/**
 * The seed-002 attacks again, over the loopback HTTP contracts (`POST /aivault/proxy`, `/v/{credential}/…`)
 * that landed while this suite was written: an agent holding only a short-lived proxy token (`avp_…`)
 * tries host swap (`url` field), auth-header injection, traversal, open redirect, response-header sniffing,
 * token misuse and reading the key back. Stopped by: the same broker pipeline as the socket; the token is
 * consumed and never forwarded; tokens are scoped to capabilities.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertNoSecret, registerSecret } from '../support/run-cli.js';
import { startAttackEnv, type AttackEnv } from './support/attack-env.js';

let a: AttackEnv;
let base = '';
let token = '';
beforeAll(async () => {
  a = await startAttackEnv({ extraEnv: { AIVAULTD_HTTP: '127.0.0.1:0' } });
  const m = await a.cli([
    '-v',
    'token',
    'mint',
    '--capability',
    'echo/api',
    '--capability',
    'openai/*',
    '--ttl',
    '15m',
  ]);
  expect(m.code, m.stderr).toBe(0);
  token = (JSON.parse(m.stdout) as { token: string }).token;
  registerSecret(token);
  expect((await a.cli(['invoke', 'echo/api', '--path', '/v1/warm'])).code).toBe(0);
  const info = JSON.parse(readFileSync(join(a.vaultDir, 'run', 'aivaultd.http.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  base =
    typeof info.url === 'string'
      ? info.url.replace(/\/$/, '')
      : `http://${String(info.host ?? '127.0.0.1')}:${String(info.port)}`;
});
afterAll(() => a?.close());

async function proxy(
  envelope: unknown,
  auth = `Bearer ${token}`,
): Promise<{ status: number; text: string; headers: Headers }> {
  const r = await fetch(`${base}/aivault/proxy`, {
    redirect: 'manual',
    method: 'POST',
    headers: { authorization: auth, 'content-type': 'application/json' },
    body: JSON.stringify(envelope),
  });
  const text = await r.text();
  assertNoSecret(text + JSON.stringify([...r.headers]), 'HTTP proxy answer');
  return { status: r.status, text, headers: r.headers };
}

describe('attacks over the loopback HTTP routes', () => {
  it('no token / a forged token / the token for another capability → refused, nothing sent', async () => {
    const before = a.raw.length;
    expect(
      (await proxy({ capability: 'echo/api', request: { method: 'GET', path: '/v1/x' } }, '')).status,
    ).toBe(401);
    expect(
      (
        await proxy(
          { capability: 'echo/api', request: { method: 'GET', path: '/v1/x' } },
          'Bearer avp_forged',
        )
      ).status,
    ).toBe(401);
    const other = await proxy({ capability: 'github/user', request: { method: 'GET', path: '/user' } });
    expect([401, 403, 404]).toContain(other.status);
    expect(a.raw.length).toBe(before);
  });

  it('host swap (url), auth header injection and traversal in the envelope are refused', async () => {
    const before = a.raw.length;
    for (const request of [
      { method: 'GET', path: '/v1/x', url: 'https://evil.test/' },
      { method: 'GET', path: '/v1/x', headers: [['authorization', 'Bearer stolen']] },
      { method: 'GET', path: '/v1/%2e%2e/admin' },
      { method: 'GET', path: '/v1/../admin' },
    ]) {
      const r = await proxy({ capability: 'echo/api', request });
      expect(r.status, JSON.stringify(request)).toBeGreaterThanOrEqual(400);
      expect(r.text).toMatch(/policy_violation|invalid_request/);
    }
    expect(a.raw.length).toBe(before);
  });

  it('open redirect is returned, not followed; leaky response headers are filtered', async () => {
    const r = await proxy({
      capability: 'echo/api',
      request: { method: 'GET', path: '/v1/redirect?to=https://evil.test/x' },
    });
    expect(r.status).toBe(302);
    const l = await proxy({ capability: 'echo/api', request: { method: 'GET', path: '/v1/leaky-headers' } });
    for (const h of ['set-cookie', 'www-authenticate', 'x-api-key', 'proxy-authenticate'])
      expect(l.headers.get(h), h).toBeNull();
    expect(a.hits('evil.test')).toEqual([]);
  });

  it('/v/{credential}: the proxy token is consumed, never forwarded; the real key is injected', async () => {
    for (const [hname, hval] of [
      ['authorization', `Bearer ${token}`],
      ['x-api-key', token],
    ] as const) {
      const before = a.raw.length;
      const r = await fetch(`${base}/v/openai/v1/models`, { headers: { [hname]: hval, cookie: 'c=1' } });
      const text = await r.text();
      assertNoSecret(text, '/v answer');
      expect(r.status, text).toBe(200);
      const seen = a.raw.slice(before);
      expect(seen.length).toBe(1);
      expect(JSON.stringify(seen[0])).not.toContain(token);
      expect(seen[0]!.headers.cookie).toBeUndefined();
      expect(seen[0]!.headers.authorization).toBe(`Bearer ${a.openaiKey}`);
      expect(seen[0]!.host).toBe('api.openai.com');
    }
  });

  it('/v/{credential}: traversal and paths outside the provider’s capabilities are refused', async () => {
    const before = a.raw.length;
    for (const p of ['/v/openai/v1/%2e%2e/admin', '/v/openai/v1/models/..%2f..%2fadmin', '/v/openai/admin']) {
      const r = await fetch(`${base}${p}`, { headers: { authorization: `Bearer ${token}` } });
      await r.text();
      expect(r.status, p).toBeGreaterThanOrEqual(400);
    }
    expect(a.raw.length).toBe(before);
  });
});

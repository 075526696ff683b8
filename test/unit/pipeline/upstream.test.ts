import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import {
  createGuardedLookup,
  Upstream,
  UPSTREAM_SILENCE_TIMEOUT_MS,
  type ClientCert,
} from '../../../src/request-worker/pipeline/upstream.js';
import type { DevOverrides } from '../../../src/core/config/env.js';
import { AivaultError } from '../../../src/core/errors.js';
import { startHttpsUpstream, type HttpsUpstream } from '../../support/https-upstream.js';
import { createTestCa } from '../../support/test-ca.js';

let up: HttpsUpstream;
let dev: DevOverrides;
beforeAll(async () => {
  up = await startHttpsUpstream();
  dev = {
    resolve: new Map([['upstream.test', { address: '127.0.0.1', port: up.port }]]),
    caCertPath: createTestCa().caCertPath,
    allowNonDefaultPorts: false,
    http1Only: true,
  };
});
afterAll(() => up.close());

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(AivaultError);
    return (err as AivaultError).code;
  }
}

describe('Upstream (undici, connect-time address guard)', () => {
  it('refuses a name that resolves to loopback without a dev mapping, before any byte is sent', async () => {
    const before = up.requests.length;
    const u = new Upstream({ dev: { ...dev, resolve: new Map() } });
    onTestFinished(() => u.close());
    expect(
      await code(
        u.request({ host: 'localhost', port: up.port, method: 'GET', pathAndQuery: '/x', headers: [] }),
      ),
    ).toBe('policy_violation');
    expect(
      await code(
        u.request({ host: '127.0.0.1', port: up.port, method: 'GET', pathAndQuery: '/x', headers: [] }),
      ),
    ).toBe('policy_violation');
    expect(up.requests.length).toBe(before);
  });

  it.each([
    ['loopback', ['127.0.0.1']],
    ['metadata', ['169.254.169.254']],
    ['private', ['10.0.0.5']],
    ['mixed public + private (rebinding)', ['93.184.216.34', '192.168.1.1']],
    ['v4-mapped loopback', ['::ffff:127.0.0.1']],
  ])('refuses at connect time when DNS answers %s', async (_name, answers) => {
    const before = up.requests.length;
    const u = new Upstream({
      resolve: async () => answers.map((address) => ({ address, family: address.includes(':') ? 6 : 4 })),
    });
    onTestFinished(() => u.close());
    const err = await u
      .request({ host: 'rebind.test', port: 443, method: 'GET', pathAndQuery: '/', headers: [] })
      .catch((e: unknown) => e);
    expect((err as AivaultError).code).toBe('policy_violation');
    expect(up.requests.length).toBe(before);
  });

  it('the guarded lookup rejects forbidden answers and allows explicit dev mappings', async () => {
    const lookup = createGuardedLookup(undefined);
    const err = await new Promise<NodeJS.ErrnoException | null>((r) =>
      lookup('localhost', { all: true }, (e) => r(e)),
    );
    expect(err?.code).toBe('AIVAULT_FORBIDDEN_ADDRESS');
    const mapped = createGuardedLookup(dev);
    const addr = await new Promise<unknown>((r) => mapped('upstream.test', {}, (_e, a) => r(a)));
    expect(addr).toBe('127.0.0.1');
  });

  it('reaches a dev-mapped host over real TLS with the dev CA; Host/SNI stay the real name', async () => {
    const u = new Upstream({ dev });
    onTestFinished(() => u.close());
    const res = await u.request({
      host: 'upstream.test',
      port: 443,
      method: 'POST',
      pathAndQuery: '/v1/echo?a=1',
      headers: [['x-test', '1']],
      body: 'hi',
    });
    expect(res.statusCode).toBe(200);
    const seen = (await res.body.json()) as {
      path: string;
      query: string;
      headers: Record<string, string>;
      body: string;
    };
    expect(seen).toMatchObject({ path: '/v1/echo', query: 'a=1', body: 'hi' });
    expect(seen.headers.host).toBe('upstream.test');
  });

  it('fails TLS without the dev CA', async () => {
    const u = new Upstream({ dev: { ...dev, caCertPath: undefined } });
    onTestFinished(() => u.close());
    const err = await u
      .request({ host: 'upstream.test', port: 443, method: 'GET', pathAndQuery: '/', headers: [] })
      .catch((e: unknown) => e);
    expect((err as AivaultError).code).toBe('upstream_unreachable');
    expect((err as AivaultError).message).toContain('TLS');
  });

  it('does not follow redirects', async () => {
    const u = new Upstream({ dev });
    onTestFinished(() => u.close());
    const before = up.requests.length;
    const res = await u.request({
      host: 'upstream.test',
      port: 443,
      method: 'GET',
      pathAndQuery: '/redirect?to=https://other.test/steal',
      headers: [['authorization', 'Bearer s3cret']],
    });
    expect(res.statusCode).toBe(302);
    expect(res.headers.location).toBe('https://other.test/steal');
    await res.body.dump();
    expect(up.requests.length).toBe(before + 1);
  });

  it('maps a stalled upstream to upstream_unreachable with a clear message', async () => {
    const u = new Upstream({ dev, headersTimeoutMs: 300 });
    onTestFinished(() => u.close());
    const err = await u
      .request({ host: 'upstream.test', port: 443, method: 'GET', pathAndQuery: '/stall', headers: [] })
      .catch((e: unknown) => e);
    expect((err as AivaultError).code).toBe('upstream_unreachable');
    expect((err as AivaultError).message).toContain('timed out waiting for response headers');
  });

  // Headers and body share one timeout by default (UPSTREAM_SILENCE_TIMEOUT_MS): undici then refreshes the
  // parser's timer when the head arrives instead of starting another. That path must still cut a body that
  // goes silent, and must not cut one that keeps coming.
  it('with one timeout for head and body, a body that goes silent is cut and one that trickles is not', async () => {
    const u = new Upstream({ dev, headersTimeoutMs: 300, bodyTimeoutMs: 300 });
    onTestFinished(() => u.close());
    const get = (pathAndQuery: string): ReturnType<Upstream['request']> =>
      u.request({ host: 'upstream.test', port: 443, method: 'GET', pathAndQuery, headers: [] });

    const silent = await get('/sse?n=2&interval=5000');
    expect(silent.statusCode).toBe(200);
    const t0 = Date.now();
    const err = await silent.body.text().catch((e: unknown) => e);
    expect((err as { code?: string }).code).toBe('UND_ERR_BODY_TIMEOUT');
    expect(Date.now() - t0).toBeLessThan(4000);

    const trickle = await get('/sse?n=12&interval=150');
    const text = await trickle.body.text();
    expect(text.match(/^data: /gm)).toHaveLength(12);
  });

  it('defaults to one ten-minute silence timeout for head and body (long non-streaming completions)', () => {
    expect(UPSTREAM_SILENCE_TIMEOUT_MS).toBe(600_000);
  });

  /** The CN of the client certificate the upstream saw on one GET (null: none was presented). */
  const seenCn = async (u: Upstream, clientCert?: ClientCert): Promise<string | null> => {
    const res = await u.request({
      host: 'upstream.test',
      port: 443,
      method: 'GET',
      pathAndQuery: '/m',
      headers: [],
      ...(clientCert ? { clientCert } : {}),
    });
    return ((await res.body.json()) as { clientCertCn: string | null }).clientCertCn;
  };

  it('presents a per-credential client certificate (mTLS)', async () => {
    const ca = createTestCa();
    const u = new Upstream({ dev });
    onTestFinished(() => u.close());
    expect(await seenCn(u, { cert: ca.clientCert, key: ca.clientKey })).toBe('aivault test client');
    expect(await seenCn(u)).toBeNull();
  });

  // The identity's TLS context holds its private key: it must not stay for the thread's life after a
  // rotation or `aivault lock` (docs/security.md), only as long as the identity is in use.
  it('drops an mTLS identity (its TLS context and key) once idle, keeps one in use, and dials it again', async () => {
    const ca = createTestCa();
    const u = new Upstream({ dev, identityIdleMs: 1_500 });
    onTestFinished(() => u.close());
    const cn = (): Promise<string | null> => seenCn(u, { cert: ca.clientCert, key: ca.clientKey });
    expect(await cn()).toBe('aivault test client');
    expect(u.clientIdentities).toBe(1);
    // Used again within the window: kept (each call starts its idle time over).
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 500));
      expect(await cn()).toBe('aivault test client');
      expect(u.clientIdentities).toBe(1);
    }
    await new Promise((r) => setTimeout(r, 2_500));
    expect(u.clientIdentities).toBe(0);
    // A later call builds the identity again and still presents the certificate.
    expect(await cn()).toBe('aivault test client');
    expect(u.clientIdentities).toBe(1);
  });

  it('forgets every mTLS identity at once after a lock, and a later call dials it again', async () => {
    const ca = createTestCa();
    const u = new Upstream({ dev });
    onTestFinished(() => u.close());
    const cert = { cert: ca.clientCert, key: ca.clientKey };
    expect(await seenCn(u, cert)).toBe('aivault test client');
    expect(u.clientIdentities).toBe(1);
    u.forgetClientIdentities();
    expect(u.clientIdentities).toBe(0);
    expect(await seenCn(u, cert)).toBe('aivault test client');
    expect(u.clientIdentities).toBe(1);
  });
});

/**
 * The operator API sets credential and capability hosts too (POST/PATCH /aivault/credentials, POST
 * /aivault/capabilities): a host invoke would refuse (port, scheme, userinfo, path, too-wide wildcard) is
 * refused there with `400 usage`, and nothing changes. The operator API never accepts a non-default port
 * (the daemon's main thread cannot verify a dev vault; dev setups use the CLI).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpFixture, type HttpFixture } from './http-fixture.js';

let fx: HttpFixture;
let op: string;
let secretRef = '';
beforeAll(async () => {
  fx = await startHttpFixture();
  op = await fx.operator();
  const echo = (await call('GET', '/aivault/credentials/echo')).json as { secretRefs: { secret: string } };
  secretRef = `vault:secret:${echo.secretRefs.secret}`;
}, 60_000);
afterAll(() => fx?.close());

function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  return fx.api(op, method, path, body);
}

const auth = { header: { header_name: 'authorization', value_template: 'Bearer {{secret}}' } };
const BAD: [string, string][] = [
  ['upstream.test:22', 'only the default https port is allowed'],
  ['*.upstream.test:8443', 'only the default https port is allowed'],
  ['https://upstream.test', 'host must be a bare DNS name'],
  ['user@upstream.test', 'host must be a bare DNS name'],
  ['upstream.test/x', 'host must be a bare DNS name'],
  ['*.test', 'wildcard is too wide'],
];

describe('operator API host validation', () => {
  it('POST /aivault/credentials refuses each bad host with 400 usage; nothing is created', async () => {
    for (const [host, message] of BAD) {
      const r = await call('POST', '/aivault/credentials', {
        id: 'bad',
        provider: 'acme',
        secretRef,
        auth,
        hosts: [host],
      });
      expect(r.status, host).toBe(400);
      expect(r.json).toMatchObject({ error: 'usage', message: expect.stringContaining(message) });
    }
    expect((await call('GET', '/aivault/credentials/bad')).status).toBe(404);
  });

  it('PATCH /aivault/credentials/{id} refuses them too and keeps the stored hosts', async () => {
    for (const [host, message] of BAD) {
      const r = await call('PATCH', '/aivault/credentials/echo', { hosts: [host] });
      expect(r.status, host).toBe(400);
      expect(r.json).toMatchObject({ error: 'usage', message: expect.stringContaining(message) });
    }
    expect((await call('GET', '/aivault/credentials/echo')).json).toMatchObject({ hosts: ['upstream.test'] });
  });

  it('POST /aivault/capabilities refuses a host with a port', async () => {
    const r = await call('POST', '/aivault/capabilities', {
      id: 'echo/ported',
      credentialId: 'echo',
      methods: ['GET'],
      pathPrefixes: ['/'],
      host: 'upstream.test:8443',
    });
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({
      error: 'usage',
      message: expect.stringContaining('only the default https port'),
    });
    expect((await call('GET', '/aivault/capabilities/echo%2Fported')).status).toBe(404);
  });
});

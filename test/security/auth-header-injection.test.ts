/**
 * Attack (seed 002): auth header injection — the caller supplies `Authorization: Bearer stolen-token` (or
 * any other auth-class header, in any case, via any input form, with CRLF smuggling) to replace or ride
 * along with the managed credential. Stopped by: sanitizeRequestHeaders (src/core/broker/headers.ts):
 * auth-class and the credential's injected header names are broker-owned → policy_violation; reserved
 * hop-by-hop headers are stripped; invalid names/values (CR/LF/NUL) → invalid_request.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  attackerSocket,
  socketTry,
  startAttackEnv,
  wireError,
  type AttackEnv,
} from './support/attack-env.js';

let a: AttackEnv;
beforeAll(async () => {
  a = await startAttackEnv();
});
afterAll(() => a?.close());

const STOLEN = 'stolen-token-attacker-controlled';

function noStolen(from: number): void {
  for (const r of a.raw.slice(from)) expect(JSON.stringify(r)).not.toContain(STOLEN);
}

describe('attack: caller-supplied auth headers', () => {
  it('CLI: authorization / x-api-key in any case are refused', async () => {
    const before = a.raw.length;
    for (const h of ['authorization', 'AuThOrIzAtIoN', 'x-api-key']) {
      const r = await a.cli(['-v', 'invoke', 'openai/models', '--header', `${h}=Bearer ${STOLEN}`]);
      expect(r.code).not.toBe(0);
      expect(wireError(r).error, h).toBe('policy_violation');
    }
    noStolen(before);
  });

  it('socket: every auth-class header, for registry and custom credentials', async () => {
    const c = await attackerSocket(a);
    const before = a.raw.length;
    try {
      for (const cap of ['openai/models', 'echo/api']) {
        for (const h of [
          'authorization',
          'Authorization',
          'AUTHORIZATION',
          'proxy-authorization',
          'x-api-key',
          'cookie',
          'api-key',
          'x-goog-api-key',
          'x-amz-security-token',
          'openai-organization',
        ]) {
          const r = await socketTry(a, c, {
            capability: cap,
            request: {
              method: 'GET',
              path: cap === 'echo/api' ? '/v1/x' : '/v1/models',
              headers: [[h, `Bearer ${STOLEN}`]],
            },
          });
          if (r.ok) {
            // Not auth-class for this provider: forwarded as is, but the managed credential still wins.
            for (const x of r.seen) expect(String(x.headers.authorization)).not.toContain(STOLEN);
          } else {
            expect(r.error, h).toBe('policy_violation');
          }
          if (['authorization', 'proxy-authorization', 'x-api-key', 'cookie'].includes(h.toLowerCase()))
            expect(r.ok, h).toBe(false);
        }
      }
      for (const r of a.raw.slice(before)) expect(String(r.headers.authorization)).not.toContain(STOLEN);
    } finally {
      c.close();
    }
  });

  it('the --request JSON form (object and list headers) is held to the same rule', async () => {
    const before = a.raw.length;
    for (const headers of [
      { Authorization: `Bearer ${STOLEN}` },
      [['authorization', `Bearer ${STOLEN}`]],
      [
        ['x-ok', '1'],
        ['AuThOrIzAtIoN', `Bearer ${STOLEN}`],
      ],
    ]) {
      const r = await a.cli([
        '-v',
        'invoke',
        'echo/api',
        '--request',
        JSON.stringify({ method: 'GET', path: '/v1/x', headers }),
      ]);
      expect(r.code).not.toBe(0);
      expect(['policy_violation', 'invalid_request']).toContain(wireError(r).error);
    }
    noStolen(before);
  });

  it('CRLF / NUL header smuggling and invalid names are refused', async () => {
    const before = a.raw.length;
    const c = await attackerSocket(a);
    for (const headers of [
      [['x-a', `b\r\nAuthorization: Bearer ${STOLEN}`]],
      [['x-a', `b\nAuthorization: Bearer ${STOLEN}`]],
      [['x-a\r\nAuthorization', `Bearer ${STOLEN}`]],
      [['authorization ', `Bearer ${STOLEN}`]],
      [['x-a', `b\u0000${STOLEN}`]],
      [['', STOLEN]],
    ] as [string, string][][]) {
      const r = await socketTry(a, c, {
        capability: 'echo/api',
        request: { method: 'GET', path: '/v1/x', headers },
      });
      expect(r.ok).toBe(false);
      if (!r.ok) expect(['policy_violation', 'invalid_request']).toContain(r.error);
    }
    c.close();
    const r = await a.cli([
      '-v',
      'invoke',
      'echo/api',
      '--request',
      JSON.stringify({
        method: 'GET',
        path: '/v1/x',
        headers: [['x-a', `b\r\nAuthorization: Bearer ${STOLEN}`]],
      }),
    ]);
    expect(['policy_violation', 'invalid_request']).toContain(wireError(r).error);
    noStolen(before);
  });

  it('through the socket protocol: same refusal; host/connection/te/transfer-encoding are stripped', async () => {
    const c = await attackerSocket(a);
    try {
      await expect(
        c.invoke({
          capability: 'echo/api',
          request: { method: 'GET', path: '/v1/x', headers: [['Authorization', `Bearer ${STOLEN}`]] },
        }),
      ).rejects.toMatchObject({ code: 'policy_violation' });
      const before = a.raw.length;
      const res = await c.invoke({
        capability: 'echo/api',
        request: {
          method: 'GET',
          path: '/v1/x',
          headers: [
            ['host', 'evil.test'],
            ['connection', 'x-smuggle'],
            ['x-smuggle', STOLEN],
            ['te', 'trailers'],
            ['transfer-encoding', 'chunked'],
            ['x-fine', 'yes'],
          ],
        },
      });
      expect(res.status).toBe(200);
      const seen = a.raw.at(-1)!;
      expect(seen.host).toBe('upstream.test');
      expect(seen.headers['x-fine']).toBe('yes');
      expect(seen.headers['x-smuggle']).toBeUndefined();
      expect(seen.headers['transfer-encoding']).toBeUndefined();
      expect(seen.headers.authorization).toBe(`Bearer ${a.echoKey}`);
      noStolen(before);
    } finally {
      c.close();
    }
  });
});

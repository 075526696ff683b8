/**
 * Attack (seed 002): open redirect auth leakage — the provider (or an attacker-influenced URL on it)
 * answers 302/307 to evil.test, hoping the broker follows and re-sends the Authorization header.
 * Stopped by: the transport never follows redirects (src/request-worker/pipeline/upstream.ts); the 3xx goes back to the
 * caller, who has no key to send. The collector must see no request at all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DaemonClient } from '../../src/core/protocol/client.js';
import { attackerSocket, startAttackEnv, type AttackEnv } from './support/attack-env.js';

let a: AttackEnv;
let c: DaemonClient;
beforeAll(async () => {
  a = await startAttackEnv();
  c = await attackerSocket(a);
});
afterAll(async () => {
  c?.close();
  await a?.close();
});

describe('attack: open redirect to another host carrying auth', () => {
  it('a 302 to the collector is returned, not followed (socket, both transports of the CLI)', async () => {
    for (const to of [
      'https://evil.test/steal',
      'https://collector.test:443/x',
      '//evil.test/steal',
      'https://upstream.test@evil.test/',
    ]) {
      const res = await c.invoke({
        capability: 'echo/api',
        request: { method: 'GET', path: `/v1/redirect?to=${encodeURIComponent(to)}` },
      });
      expect(res.status).toBe(302);
      // The caller may see where it points (location is not auth-class) — but no auth went there.
      expect(res.headers.some(([n]) => n === 'authorization' || n === 'set-cookie')).toBe(false);
    }
    for (const extra of [{}, { AIVAULTD_DISABLE: '1' }]) {
      const r = await a.cli(
        ['-v', 'invoke', 'openai/models', '--path', '/v1/models/redirect?to=https%3A%2F%2Fevil.test%2Fsteal'],
        extra,
      );
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ status: 302 });
    }
    expect(a.hits('evil.test')).toEqual([]);
    expect(a.hits('collector.test')).toEqual([]);
  });

  it('a same-host redirect is not followed either (one request, the one the caller asked for)', async () => {
    // The in-process run above stopped the daemon (in-process calls are refused while it serves the
    // vault): connect again, which autostarts it.
    c.close();
    c = await attackerSocket(a);
    const before = a.raw.length;
    const res = await c.invoke({
      capability: 'echo/api',
      request: { method: 'GET', path: '/v1/redirect?to=https://upstream.test/v1/other' },
    });
    expect(res.status).toBe(302);
    expect(a.raw.length - before).toBe(1);
  });
});

/**
 * Attack (seed 002): response-based credential sniffing — read tokens from upstream response headers
 * (set-cookie, authorization, www-authenticate, proxy-authenticate, x-api-key). Stopped by:
 * filterResponseHeaders (src/core/broker/headers.ts) on every transport; CLI output modes print no upstream
 * headers at all.
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

const SNIFFED = ['set-cookie', 'authorization', 'www-authenticate', 'proxy-authenticate', 'x-api-key'];
const VALUES = ['upstream-cookie', 'upstream-leak', 'upstream-key', 'realm='];

describe('attack: sniff credentials from response headers', () => {
  it('buffered and streamed socket answers carry none of the auth-class headers', async () => {
    const res = await c.invoke({
      capability: 'echo/api',
      request: { method: 'GET', path: '/v1/leaky-headers' },
    });
    const names = res.headers.map(([n]) => n);
    for (const h of SNIFFED) expect(names).not.toContain(h);
    expect(names).toContain('x-upstream'); // ordinary headers do pass: the filter is targeted
    const s = c.stream({ capability: 'echo/api', request: { method: 'GET', path: '/v1/leaky-headers' } });
    const head = await s.head;
    for (const h of SNIFFED) expect(head.headers.map(([n]) => n)).not.toContain(h);
    for await (const _ of s.body) void _;
  });

  it('CLI invoke / json / markdown / --stream, human and -v, print no upstream header values', async () => {
    for (const args of [
      ['invoke', 'openai/models', '--path', '/v1/models/leaky-headers'],
      ['-v', 'invoke', 'openai/models', '--path', '/v1/models/leaky-headers'],
      ['-v', 'json', 'openai/models', '--path', '/v1/models/leaky-headers'],
      ['markdown', 'openai/models', '--path', '/v1/models/leaky-headers'],
      ['invoke', 'openai/models', '--stream', '--path', '/v1/models/leaky-headers'],
    ]) {
      const r = await a.cli(args);
      expect(r.code, r.stderr).toBe(0);
      for (const v of VALUES) expect(r.stdout + r.stderr, `${args.join(' ')} ${v}`).not.toContain(v);
    }
  });
});

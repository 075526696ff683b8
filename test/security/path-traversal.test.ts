/**
 * Attack (seed 002): path traversal — `/v1/chat/../../../etc/passwd` and every encoding of it, to escape the
 * capability's allowed prefix on the provider host. Stopped by: normalizePath (src/core/broker/path.ts): decode
 * once; dot segments raw or encoded, encoded separators, backslashes, `//`, control characters, double
 * encoding and non-ASCII → refused; then a segment-boundary prefix check. Every accepted path that reached
 * the upstream must be under the allowed prefix with no dot segment.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DaemonClient } from '../../src/core/protocol/client.js';
import {
  attackerSocket,
  socketTry,
  startAttackEnv,
  wireError,
  type AttackEnv,
} from './support/attack-env.js';

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

const ATTACKS = [
  '/v1/../etc/passwd',
  '/v1/chat/../../../etc/passwd',
  '/v1/./../admin',
  '/v1/%2e%2e/admin',
  '/v1/%2E%2E/admin',
  '/v1/.%2e/admin',
  '/v1/%2e./admin',
  '/v1/%252e%252e/admin',
  '/v1/%25%32%65%25%32%65/admin',
  '/v1/..%2fadmin',
  '/v1/..%2Fadmin',
  '/v1%2f..%2fadmin',
  '/v1/%2f/admin',
  '/v1\\..\\admin',
  '/v1/..%5cadmin',
  '/v1/%5c../admin',
  '/v1//admin',
  '//v1/admin',
  '/v1/%c0%ae%c0%ae/admin',
  '/v1/%e0%80%ae%e0%80%ae/admin',
  '/v1/%u002e%u002e/admin',
  '/v1/..;/admin',
  '/v1/.;/admin',
  '/v1/x%00/../admin',
  '/v1/x%0a',
  '/v1/x\t',
  '/v1/\u2025/admin',
  '/v1/．．/admin',
  '/v1x/admin',
  '/V1/admin',
  '/admin',
  'v1/admin',
  '/v1/x#/../../admin',
  '/v1/%ff%fe',
  '/v1/%',
  '/v1/%2',
  '/v1/..',
  '/v1/.',
  '/v1/%2e',
  '/v1/x/%2e%2e',
  '/v1/x/..%00',
];

function underPrefix(url: string): boolean {
  const path = url.split('?')[0] ?? '';
  if (path !== '/v1' && !path.startsWith('/v1/')) return false;
  const segs = path.split('/').map((s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  });
  return !segs.some((s) => s === '..' || s === '.' || s.includes('/') || s.includes('\\'));
}

describe('attack: path traversal in every encoding', () => {
  it('over the socket: every traversal is refused, or reaches the upstream under /v1 with no dot segment', async () => {
    let refused = 0;
    for (const path of ATTACKS) {
      for (const cap of ['echo/api', 'openai/models']) {
        const r = await socketTry(a, c, { capability: cap, request: { method: 'GET', path } });
        if (r.ok) {
          for (const x of r.seen) expect(underPrefix(x.url), `${path} -> ${x.url}`).toBe(true);
        } else {
          refused++;
          expect(['policy_violation', 'invalid_request'], path).toContain(r.error);
          expect(r.seen, path).toEqual([]);
        }
      }
    }
    expect(refused).toBeGreaterThan(2 * ATTACKS.length - 8);
  });

  it('through the CLI (a representative set)', async () => {
    for (const path of [
      '/v1/chat/../../../etc/passwd',
      '/v1/%2e%2e/admin',
      '/v1/..%2fadmin',
      '/v1\\..\\admin',
      '/v1//admin',
    ]) {
      const before = a.raw.length;
      const r = await a.cli(['-v', 'invoke', 'echo/api', '--path', path]);
      expect(r.code, path).not.toBe(0);
      expect(['policy_violation', 'invalid_request', 'usage'], path).toContain(wireError(r).error);
      expect(a.raw.length, path).toBe(before);
    }
  });

  it('traversal in the --request JSON form and in the query string', async () => {
    for (const path of ['/v1/../../admin', '/v1/%2e%2e/admin', '/v1/x?next=/../../admin']) {
      const before = a.raw.length;
      const r = await a.cli([
        '-v',
        'invoke',
        'echo/api',
        '--request',
        JSON.stringify({ method: 'GET', path }),
      ]);
      if (r.code === 0) for (const x of a.raw.slice(before)) expect(underPrefix(x.url), x.url).toBe(true);
      else expect(['policy_violation', 'invalid_request']).toContain(wireError(r).error);
    }
  });

  it('a legitimate encoded path still works (the guard is not just refusing everything)', async () => {
    const r = await a.cli(['invoke', 'echo/api', '--path', '/v1/caf%C3%A9/a%20b']);
    expect(r.code, r.stderr).toBe(0);
    expect(a.raw.at(-1)?.url).toBe('/v1/caf%C3%A9/a%20b');
  });
});

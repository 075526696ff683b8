/**
 * Attack (seed 002): credential overuse — invoke at high volume / with huge bodies to rack up charges.
 * Stopped by: per-capability rate limit per minute, exact across request workers (SharedArrayBuffer +
 * Atomics), and request/response body size limits (src/core/threads/rate-limit.ts, request-body.ts,
 * invoke.ts). Verified through the CLI and with many concurrent socket connections.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../src/core/protocol/client.js';
import { join } from 'node:path';
import { startAttackEnv, wireError, type AttackEnv } from './support/attack-env.js';

let a: AttackEnv;
beforeAll(async () => {
  a = await startAttackEnv({ extraEnv: { AIVAULTD_WORKERS: '2' } });
  for (const [cap, flags] of [
    ['echo/limited', ['--rate-limit-per-minute', '7']],
    ['echo/small', ['--max-request-body-bytes', '16', '--max-response-body-bytes', '4096']],
  ] as const) {
    expect(
      (
        await a.cli([
          'capability',
          'create',
          cap,
          '--credential',
          'echo',
          '--method',
          'GET',
          '--method',
          'POST',
          '--path',
          '/v1',
        ])
      ).code,
    ).toBe(0);
    expect((await a.cli(['capability', 'policy', 'set', '--capability', cap, ...flags])).code).toBe(0);
  }
  expect((await a.cli(['invoke', 'echo/api', '--path', '/v1/warm'])).code).toBe(0);
});
afterAll(() => a?.close());

describe('attack: credential overuse', () => {
  it('60 concurrent calls from 6 connections against a 7/min limit: exactly 7 reach the upstream', async () => {
    const sock = join(a.vaultDir, 'run', 'aivaultd.sock');
    const clients = await Promise.all([1, 2, 3, 4, 5, 6].map(() => connect({ socketPath: sock })));
    const before = a.raw.length;
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        clients[i % clients.length]!.invoke({
          capability: 'echo/limited',
          request: { method: 'GET', path: `/v1/n${i}` },
        }).then(
          () => 'ok',
          (e: { code?: string }) => e.code,
        ),
      ),
    );
    for (const c of clients) c.close();
    expect(results.filter((r) => r === 'ok').length).toBe(7);
    expect(results.filter((r) => r === 'rate_limited').length).toBe(53);
    expect(a.raw.length - before).toBe(7);
    const cli = await a.cli(['-v', 'invoke', 'echo/limited', '--path', '/v1/again']);
    expect(wireError(cli).error).toBe('rate_limited');
  });

  it('an oversized request body is refused before anything is sent (inline and file)', async () => {
    const before = a.raw.length;
    const r = await a.cli([
      '-v',
      'invoke',
      'echo/small',
      '--method',
      'POST',
      '--path',
      '/v1/x',
      '--body',
      'x'.repeat(17),
    ]);
    expect(wireError(r).error).toBe('body_too_large');
    const ok = await a.cli([
      'invoke',
      'echo/small',
      '--method',
      'POST',
      '--path',
      '/v1/x',
      '--body',
      'x'.repeat(16),
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(a.raw.length - before).toBe(1);
  });

  it('an oversized response body is cut off with body_too_large (buffered and --stream)', async () => {
    for (const extra of [[], ['--stream']]) {
      const r = await a.cli(['-v', 'invoke', 'echo/small', '--path', '/v1/large?bytes=1000000', ...extra]);
      expect(r.code).not.toBe(0);
      expect(r.stdout.length + r.stderr.length).toBeLessThan(10_000);
      expect(r.stdout + r.stderr).toContain('body_too_large');
    }
  });
});

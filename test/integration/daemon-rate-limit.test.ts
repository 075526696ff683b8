import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envelope, startFixture, type DaemonFixture } from './daemon-fixture.js';

const LIMIT = 37;
let fx: DaemonFixture;
beforeAll(async () => {
  fx = await startFixture({ workers: 4, limited: { 'echo/limited': LIMIT } });
  // Warm all four workers so the burst below really races across threads.
  await Promise.all(Array.from({ length: 16 }, (_, i) => fx.client.invoke(envelope(`/warm/${i}`))));
}, 60_000);
afterAll(() => fx?.close());

describe('aivaultd rate limit (SharedArrayBuffer + Atomics across request workers)', () => {
  it(`admits exactly ${LIMIT} of 500 concurrent calls spread over 4 workers and 2 connections`, async () => {
    const second = await fx.connect();
    const before = fx.upstream.requests.length;
    const results = await Promise.allSettled(
      Array.from({ length: 500 }, (_, i) =>
        (i % 2 ? second : fx.client).invoke(envelope(`/limited/${i}`, 'GET', 'echo/limited')),
      ),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    const limited = results.filter(
      (r) => r.status === 'rejected' && (r.reason as { code?: string }).code === 'rate_limited',
    );
    expect(ok).toHaveLength(LIMIT);
    expect(limited).toHaveLength(500 - LIMIT);
    expect(fx.upstream.requests.length - before).toBe(LIMIT);
    const err = (limited[0] as PromiseRejectedResult).reason as { details?: { retryAfterMs?: number } };
    expect(err.details?.retryAfterMs).toBeGreaterThan(0);
    // Other capabilities are unaffected.
    expect((await fx.client.invoke(envelope('/free'))).status).toBe(200);
  }, 60_000);
});

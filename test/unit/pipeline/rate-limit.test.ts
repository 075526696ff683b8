import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { createRateLimitBuffer, RateLimiter, WINDOW_MS } from '../../../src/pipeline/rate-limit.js';
import { awayFromRateWindowEdge } from '../../support/rate-window.js';

const BOOT = fileURLToPath(new URL('../../../workers/tsx-boot.mjs', import.meta.url));
const HAMMER = new URL('./fixtures/rate-limit-hammer.ts', import.meta.url).href;

async function hammer(
  workers: number,
  attempts: number,
  capabilities: string[],
  limit: number,
  slots?: number,
) {
  await awayFromRateWindowEdge(5000);
  const buffer = createRateLimitBuffer(slots);
  const barrier = new SharedArrayBuffer(8);
  const gate = new Int32Array(barrier);
  const threads = Array.from(
    { length: workers },
    () =>
      new Worker(BOOT, {
        workerData: { __aivaultWorker: HAMMER, buffer, barrier, attempts, capabilities, limit },
      }),
  );
  const results = threads.map(
    (w) =>
      new Promise<Record<string, number>>((resolve, reject) => {
        w.once('message', resolve);
        w.once('error', reject);
      }),
  );
  while (Atomics.load(gate, 1) < workers) await new Promise((r) => setTimeout(r, 5));
  Atomics.store(gate, 0, 1);
  Atomics.notify(gate, 0);
  const all = await Promise.all(results);
  await Promise.all(threads.map((t) => t.terminate()));
  const total: Record<string, number> = {};
  for (const r of all) for (const [k, v] of Object.entries(r)) total[k] = (total[k] ?? 0) + v;
  return total;
}

describe('RateLimiter (SharedArrayBuffer + Atomics)', () => {
  it('admits exactly L per window with 4 real worker threads racing', async () => {
    const total = await hammer(4, 5000, ['openai/chat'], 137);
    expect(total['openai/chat']).toBe(137);
  }, 30_000);

  it('keeps separate exact counters for many capabilities, even in a tiny table', async () => {
    const caps = Array.from({ length: 16 }, (_, i) => `cap/${i}`);
    const total = await hammer(4, 4000, caps, 25, 16);
    for (const cap of caps) expect(total[cap]).toBe(25);
  }, 30_000);

  it('rolls over to a fresh window and reports retryAfter', () => {
    let now = 10 * WINDOW_MS + 1000;
    const limiter = new RateLimiter(createRateLimitBuffer(8), () => now);
    expect(limiter.tryAcquire('a', 2).admitted).toBe(true);
    expect(limiter.tryAcquire('a', 2).admitted).toBe(true);
    const denied = limiter.tryAcquire('a', 2);
    expect(denied.admitted).toBe(false);
    expect(denied.retryAfterMs).toBe(WINDOW_MS - 1000);
    now += WINDOW_MS;
    expect(limiter.tryAcquire('a', 2).admitted).toBe(true);
  });

  it('fails closed when the table is full', () => {
    const limiter = new RateLimiter(createRateLimitBuffer(2));
    expect(limiter.tryAcquire('a', 5).admitted).toBe(true);
    expect(limiter.tryAcquire('b', 5).admitted).toBe(true);
    expect(limiter.tryAcquire('c', 5).admitted).toBe(false);
  });
});

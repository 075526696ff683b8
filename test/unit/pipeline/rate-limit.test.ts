import { describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { createRateLimitBuffer, RateLimiter, WINDOW_MS } from '../../../src/core/threads/rate-limit.js';

const BOOT = fileURLToPath(new URL('../../../src/pool/tsx-boot.mjs', import.meta.url));
const HAMMER = new URL('./fixtures/rate-limit-hammer.ts', import.meta.url).href;

async function hammer(
  workers: number,
  attempts: number,
  capabilities: string[],
  limit: number,
  slots?: number,
) {
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
  it('admits exactly L with 4 real worker threads racing', async () => {
    const total = await hammer(4, 5000, ['openai/chat'], 137);
    expect(total['openai/chat']).toBe(137);
  }, 30_000);

  it('keeps separate exact counters for many capabilities, even in a tiny table', async () => {
    const caps = Array.from({ length: 16 }, (_, i) => `cap/${i}`);
    const total = await hammer(4, 4000, caps, 25, 16);
    for (const cap of caps) expect(total[cap]).toBe(25);
  }, 30_000);

  it('slides: 9 calls in 1.1 s across a minute boundary at 5/min admit only 5', () => {
    // A fixed minute window admitted 4 before :00 and 5 after (9 of 9): twice the limit.
    let now = 10 * WINDOW_MS - 600;
    const limiter = new RateLimiter(createRateLimitBuffer(8), () => now);
    const admitted: number[] = [];
    for (let i = 0; i < 9; i++) {
      if (limiter.tryAcquire('a', 5).admitted) admitted.push(now);
      now += 137; // 9 calls over ~1.1 s, straddling 10 * WINDOW_MS
    }
    expect(admitted).toHaveLength(5);
  });

  it('frees a slot only when the oldest call is a full minute old, and says when', () => {
    let now = 10 * WINDOW_MS + 1000;
    const limiter = new RateLimiter(createRateLimitBuffer(8), () => now);
    expect(limiter.tryAcquire('a', 2).admitted).toBe(true);
    now += 30_000;
    expect(limiter.tryAcquire('a', 2).admitted).toBe(true);
    const denied = limiter.tryAcquire('a', 2);
    expect(denied.admitted).toBe(false);
    // The first call (second 601) leaves the 61-second span at second 662: 31 s from now.
    expect(denied.retryAfterMs).toBe(31_000);
    now += 29_000; // 59 s after the first call: still inside the minute
    expect(limiter.tryAcquire('a', 2).admitted).toBe(false);
    now += 2_000; // 61 s after the first call
    expect(limiter.tryAcquire('a', 2).admitted).toBe(true);
    expect(limiter.tryAcquire('a', 2).admitted).toBe(false);
    now += 5 * WINDOW_MS; // long idle: everything expired
    expect(limiter.tryAcquire('a', 2).admitted).toBe(true);
    expect(limiter.tryAcquire('a', 2).admitted).toBe(true);
  });

  it('never admits more than L in any 60 s interval (property, random arrival times)', () => {
    for (let trial = 0; trial < 50; trial++) {
      let now = 1_700_000_000_000 + Math.floor(Math.random() * WINDOW_MS);
      const limit = 1 + Math.floor(Math.random() * 10);
      const limiter = new RateLimiter(createRateLimitBuffer(4), () => now);
      const times: number[] = [];
      for (let i = 0; i < 400; i++) {
        now += Math.floor(Math.random() * 2000);
        if (limiter.tryAcquire('x', limit).admitted) times.push(now);
      }
      for (let i = 0; i + limit < times.length; i++) {
        expect((times[i + limit] as number) - (times[i] as number)).toBeGreaterThanOrEqual(WINDOW_MS);
      }
    }
  });

  it('a lock left by a worker that died inside the section is taken over', () => {
    let now = 5 * WINDOW_MS;
    const buffer = createRateLimitBuffer(1);
    const limiter = new RateLimiter(buffer, () => now);
    expect(limiter.tryAcquire('a', 3).admitted).toBe(true);
    // Slot 0's lock word sits right after the one slot's two 64-bit meta words.
    const lock = new Int32Array(buffer, 16, 1);
    Atomics.store(lock, 0, (now - 5000) & 0x7fffffff);
    now += 10;
    expect(limiter.tryAcquire('a', 3).admitted).toBe(true);
    expect(Atomics.load(lock, 0)).toBe(0);
  });

  it('the takeover staleness is injectable (Config.testing.rateLimitLockStaleMs): 50 ms instead of 1 s', () => {
    // The clock moves 1 ms per read: the lock is re-tried once per read, so the reads count the wait.
    let now = 5 * WINDOW_MS;
    let reads = 0;
    const clock = (): number => (reads++, now++);
    const buffer = createRateLimitBuffer(1);
    const limiter = new RateLimiter(buffer, clock, 50);
    expect(limiter.tryAcquire('a', 3).admitted).toBe(true);
    const lock = new Int32Array(buffer, 16, 1);
    Atomics.store(lock, 0, (now - 100) & 0x7fffffff);
    reads = 0;
    expect(limiter.tryAcquire('a', 3).admitted).toBe(true);
    expect(Atomics.load(lock, 0)).toBe(0);
    // Taken over after the 64 spins it always allows, not after the ~900 more a 1 s staleness would need.
    expect(reads).toBeLessThan(200);
  });

  it('fails closed when the table is full', () => {
    const limiter = new RateLimiter(createRateLimitBuffer(2));
    expect(limiter.tryAcquire('a', 5).admitted).toBe(true);
    expect(limiter.tryAcquire('b', 5).admitted).toBe(true);
    expect(limiter.tryAcquire('c', 5).admitted).toBe(false);
  });
});

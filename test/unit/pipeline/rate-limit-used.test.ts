/**
 * RateLimiter.used (src/core/threads/rate-limit.ts): the read-only count behind /metrics' rate-limit
 * headroom — it sees every admitted call of the window, never claims a slot, and forgets calls that left
 * the window.
 */
import { describe, expect, it } from 'vitest';
import { createRateLimitBuffer, RateLimiter } from '../../../src/core/threads/rate-limit.js';

describe('RateLimiter.used', () => {
  it('counts admitted calls in the window, from another view of the same table', () => {
    let now = 1_000_000;
    const buf = createRateLimitBuffer(8);
    const worker = new RateLimiter(buf, () => now);
    const main = new RateLimiter(buf, () => now);
    expect(main.used('a/b')).toBe(0);
    for (let i = 0; i < 3; i++) expect(worker.tryAcquire('a/b', 5).admitted).toBe(true);
    now += 20_000;
    expect(worker.tryAcquire('a/b', 5).admitted).toBe(true);
    expect(main.used('a/b')).toBe(4);
    expect(main.used('c/d')).toBe(0);
    // The first three leave the window 61 s after their second began; the fourth is still in.
    now += 41_000;
    expect(main.used('a/b')).toBe(1);
    now += 60_000;
    expect(main.used('a/b')).toBe(0);
    // Reading claimed nothing: the table still has room for 7 more capabilities.
    for (let i = 0; i < 7; i++) expect(worker.tryAcquire(`cap/${i}`, 1).admitted).toBe(true);
  });
});

/**
 * Exact per-capability, per-minute rate limits shared by every request worker through one
 * SharedArrayBuffer (allocated by the daemon's main thread, handed to workers in workerData).
 * Holds counters only: no secrets, no I/O.
 *
 * Layout: a BigInt64Array of `slots * 2` words. Slot i = [key, state] where `key` is a non-zero 63-bit
 * hash of the capability id (claimed once with compareExchange 0 → key; open addressing, linear probing)
 * and `state` packs `windowIndex << 32 | count` into ONE 64-bit word. Admission is a compareExchange loop
 * on that single word, so window roll-over and increment are one atomic step: with any number of workers
 * and a limit L, at most L calls are admitted per fixed minute window, never L+1.
 * 64-bit keys make a collision between two capability ids practically impossible; if one ever happened the
 * two capabilities would share a counter (stricter, never looser).
 */
import { createHash } from 'node:crypto';

export const WINDOW_MS = 60_000;
export const DEFAULT_SLOTS = 4096;

export interface RateDecision {
  readonly admitted: boolean;
  /** Milliseconds until the current window ends (for retry hints). */
  readonly retryAfterMs: number;
}

/** Allocate the shared table (main thread). */
export function createRateLimitBuffer(slots = DEFAULT_SLOTS): SharedArrayBuffer {
  if (!Number.isInteger(slots) || slots < 1) throw new TypeError('slots must be a positive integer');
  return new SharedArrayBuffer(slots * 2 * BigInt64Array.BYTES_PER_ELEMENT);
}

const MASK32 = 0xffffffffn;

function keyOf(capabilityId: string): bigint {
  const digest = createHash('sha256').update(capabilityId, 'utf8').digest();
  const key = digest.readBigInt64BE(0) & 0x7fffffffffffffffn;
  return key === 0n ? 1n : key;
}

export class RateLimiter {
  private readonly table: BigInt64Array;
  private readonly slots: number;
  private readonly slotCache = new Map<string, number>();
  private readonly now: () => number;

  constructor(buffer: SharedArrayBuffer, now: () => number = Date.now) {
    this.table = new BigInt64Array(buffer);
    this.slots = this.table.length / 2;
    this.now = now;
  }

  /** Find or claim the slot for `capabilityId`. Returns -1 only when the table is full. */
  private slotFor(capabilityId: string): number {
    const cached = this.slotCache.get(capabilityId);
    if (cached !== undefined) return cached;
    const key = keyOf(capabilityId);
    const start = Number(key % BigInt(this.slots));
    for (let n = 0; n < this.slots; n++) {
      const i = (start + n) % this.slots;
      const prev = Atomics.compareExchange(this.table, i * 2, 0n, key);
      if (prev === 0n || prev === key) {
        this.slotCache.set(capabilityId, i);
        return i;
      }
    }
    return -1;
  }

  /** Try to admit one call. `limit` is the policy's per-minute limit (a positive integer). */
  tryAcquire(capabilityId: string, limit: number): RateDecision {
    const now = this.now();
    const window = BigInt(Math.floor(now / WINDOW_MS));
    const retryAfterMs = (Number(window) + 1) * WINDOW_MS - now;
    if (!(limit > 0)) return { admitted: false, retryAfterMs };
    const slot = this.slotFor(capabilityId);
    // A full table fails closed: refusing is safe, admitting without counting is not.
    if (slot < 0) return { admitted: false, retryAfterMs };
    const idx = slot * 2 + 1;
    const cap = BigInt(Math.floor(limit));
    for (;;) {
      const cur = Atomics.load(this.table, idx);
      const curWindow = cur >> 32n;
      const count = cur & MASK32;
      let next: bigint;
      if (curWindow !== window) {
        // A stale (older) window restarts at 1; a newer window seen from a lagging clock still counts.
        if (curWindow > window) {
          if (count >= cap) return { admitted: false, retryAfterMs };
          next = cur + 1n;
        } else {
          next = (window << 32n) | 1n;
        }
      } else {
        if (count >= cap) return { admitted: false, retryAfterMs };
        next = cur + 1n;
      }
      if (Atomics.compareExchange(this.table, idx, cur, next) === cur) {
        return { admitted: true, retryAfterMs };
      }
    }
  }
}

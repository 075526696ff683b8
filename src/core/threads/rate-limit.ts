/**
 * Exact per-capability, per-minute rate limits shared by every request worker through one
 * SharedArrayBuffer (allocated by the daemon's main thread, handed to workers in workerData).
 * Holds counters only: no secrets, no I/O.
 *
 * Sliding window, not fixed minutes: a fixed window admits 2L across a minute boundary (L just before
 * :00, L just after). Here a call is admitted only if fewer than L calls were admitted in the last 60 s,
 * counted in one-second buckets. The counted span is the current second plus the 60 before it, i.e.
 * between 60 and 61 s, never less, so at most L calls are admitted in ANY 60 s interval (at the price of
 * waiting up to one extra second before a slot frees).
 *
 * Layout (one buffer, two views):
 * - BigInt64Array `meta`, 2 words per slot: [key, lastSecond]. `key` is a non-zero 63-bit hash of the
 *   capability id, claimed once with compareExchange 0 → key (open addressing, linear probing).
 * - Int32Array `cells`, 1 + BUCKETS words per slot: [lock, count(second s) at s % BUCKETS …].
 * The check "sum of 61 buckets < L, then increment one" spans many words, so it cannot be one
 * compareExchange like the old packed fixed-window word; a per-slot lock makes it one step for every
 * worker. The critical section is ~61 loads (well under a microsecond) and only callers of the same
 * capability contend. The lock word holds the holder's clock (ms, 31 bits): a holder that died inside the
 * section (a terminated worker) is taken over after LOCK_STALE_MS (or the constructor's `lockStaleMs`,
 * from Config.testing in tests) instead of blocking the slot forever.
 * 64-bit keys make a collision between two capability ids practically impossible; if one ever happened the
 * two capabilities would share a counter (stricter, never looser).
 */
import { createHash } from 'node:crypto';

export const WINDOW_MS = 60_000;
/**
 * Distinct rate-limited capabilities (only capabilities with a rate-limit policy take a slot; a full table
 * fails closed). Kept small on purpose: each slot is 264 bytes, and with 4096 slots (1 MB) 50 concurrent
 * CLI invocations started timing out connecting upstream (test/e2e/cli/invoke-cli.test.ts) although no
 * call touched the table — not understood yet; 256 slots (67 KB, the old table's size) do not.
 */
export const DEFAULT_SLOTS = 256;
const BUCKET_MS = 1000;
/** 60 whole seconds before the current one, plus the current one. */
const BUCKETS = WINDOW_MS / BUCKET_MS + 1;
const CELLS_PER_SLOT = 1 + BUCKETS;
const LOCK_STALE_MS = 1000;
const MS31 = 0x7fffffff;

export interface RateDecision {
  readonly admitted: boolean;
  /** Milliseconds until a call can be admitted again (for retry hints). */
  readonly retryAfterMs: number;
  /** Admitted WITHOUT being counted: the fleet's Redis is down and `--fleet-fail-open` is set. */
  readonly bypassed?: boolean;
  /** Refused because the fleet's Redis could not be asked (fail closed), not because the limit is used. */
  readonly unavailable?: string;
}

/**
 * Who admits rate-limited calls: this table (synchronous, the fast path) or, in fleet mode, the shared
 * Redis window (src/stores/fleet/redis-admission.ts, asynchronous). The caller awaits only a promise.
 */
export interface Admission {
  tryAcquire(capabilityId: string, limit: number): RateDecision | Promise<RateDecision>;
}

const META_BYTES = 2 * BigInt64Array.BYTES_PER_ELEMENT;
const CELL_BYTES = CELLS_PER_SLOT * Int32Array.BYTES_PER_ELEMENT;

/** Allocate the shared table (main thread). */
export function createRateLimitBuffer(slots = DEFAULT_SLOTS): SharedArrayBuffer {
  if (!Number.isInteger(slots) || slots < 1) throw new TypeError('slots must be a positive integer');
  return new SharedArrayBuffer(slots * (META_BYTES + CELL_BYTES));
}

function keyOf(capabilityId: string): bigint {
  const digest = createHash('sha256').update(capabilityId, 'utf8').digest();
  const key = digest.readBigInt64BE(0) & 0x7fffffffffffffffn;
  return key === 0n ? 1n : key;
}

export class RateLimiter implements Admission {
  private readonly meta: BigInt64Array;
  private readonly cells: Int32Array;
  private readonly slots: number;
  private readonly slotCache = new Map<string, number>();
  private readonly now: () => number;
  private readonly lockStaleMs: number;

  constructor(buffer: SharedArrayBuffer, now: () => number = Date.now, lockStaleMs = LOCK_STALE_MS) {
    this.slots = buffer.byteLength / (META_BYTES + CELL_BYTES);
    if (!Number.isInteger(this.slots) || this.slots < 1)
      throw new TypeError('not a rate-limit buffer (use createRateLimitBuffer)');
    this.meta = new BigInt64Array(buffer, 0, this.slots * 2);
    this.cells = new Int32Array(buffer, this.slots * META_BYTES, this.slots * CELLS_PER_SLOT);
    this.now = now;
    this.lockStaleMs = lockStaleMs;
  }

  /** Find or claim the slot for `capabilityId`. Returns -1 only when the table is full. */
  private slotFor(capabilityId: string): number {
    const cached = this.slotCache.get(capabilityId);
    if (cached !== undefined) return cached;
    const key = keyOf(capabilityId);
    const start = Number(key % BigInt(this.slots));
    for (let n = 0; n < this.slots; n++) {
      const i = (start + n) % this.slots;
      const prev = Atomics.compareExchange(this.meta, i * 2, 0n, key);
      if (prev === 0n || prev === key) {
        this.slotCache.set(capabilityId, i);
        return i;
      }
    }
    return -1;
  }

  private lock(at: number): number {
    for (let spins = 0; ; spins++) {
      const stamp = this.now() & MS31 || 1;
      const held = Atomics.compareExchange(this.cells, at, 0, stamp);
      if (held === 0) return stamp;
      // Only a holder that died mid-section can hold it this long: take it over (one winner by CAS).
      if (spins > 64 && ((stamp - held) & MS31) > this.lockStaleMs) {
        if (Atomics.compareExchange(this.cells, at, held, stamp) === held) return stamp;
      }
    }
  }

  /**
   * Calls admitted for `capabilityId` in the current window, read without the lock and without claiming
   * a slot (for /metrics' rate-limit headroom and the dashboard's rate-limit view, on the main thread;
   * may be off by a call in flight).
   */
  used(capabilityId: string): number {
    const key = keyOf(capabilityId);
    const start = Number(key % BigInt(this.slots));
    for (let n = 0; n < this.slots; n++) {
      const i = (start + n) % this.slots;
      const k = Atomics.load(this.meta, i * 2);
      if (k === 0n) return 0;
      if (k !== key) continue;
      const last = Number(Atomics.load(this.meta, i * 2 + 1));
      const second = Math.floor(this.now() / BUCKET_MS);
      let used = 0;
      // Buckets up to `last` are current; older seconds leave the window as `second` moves on.
      for (let s = Math.max(second, last) - BUCKETS + 1; s <= Math.min(second, last); s++) {
        used += Atomics.load(this.cells, i * CELLS_PER_SLOT + 1 + (s % BUCKETS));
      }
      return used;
    }
    return 0;
  }

  /** Try to admit one call. `limit` is the policy's per-minute limit (a positive integer). */
  tryAcquire(capabilityId: string, limit: number): RateDecision {
    const now = this.now();
    if (!(limit > 0)) return { admitted: false, retryAfterMs: WINDOW_MS };
    const slot = this.slotFor(capabilityId);
    // A full table fails closed: refusing is safe, admitting without counting is not.
    if (slot < 0) return { admitted: false, retryAfterMs: WINDOW_MS };
    const base = slot * CELLS_PER_SLOT;
    const stamp = this.lock(base);
    try {
      const last = Number(Atomics.load(this.meta, slot * 2 + 1));
      // A clock that went backwards counts into the newest bucket (stricter, never looser).
      const second = Math.max(Math.floor(now / BUCKET_MS), last);
      for (let s = Math.max(last + 1, second - BUCKETS + 1); s <= second; s++) {
        Atomics.store(this.cells, base + 1 + (s % BUCKETS), 0);
      }
      if (second !== last) Atomics.store(this.meta, slot * 2 + 1, BigInt(second));
      let used = 0;
      let oldest = second;
      for (let s = second - BUCKETS + 1; s <= second; s++) {
        const c = Atomics.load(this.cells, base + 1 + (s % BUCKETS));
        if (c > 0 && s < oldest) oldest = s;
        used += c;
      }
      if (used >= Math.floor(limit)) {
        // The oldest counted second leaves the window BUCKETS seconds after it began.
        return { admitted: false, retryAfterMs: Math.max(1, (oldest + BUCKETS) * BUCKET_MS - now) };
      }
      Atomics.add(this.cells, base + 1 + (second % BUCKETS), 1);
      return { admitted: true, retryAfterMs: 0 };
    } finally {
      Atomics.compareExchange(this.cells, base, stamp, 0);
    }
  }
}

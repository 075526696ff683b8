/**
 * The vault generation: one counter in a SharedArrayBuffer that the daemon's main thread allocates and
 * hands to every request worker and to the crypto worker (like the rate-limit table). Every in-daemon
 * writer bumps it once its write is durable (operator commands, HTTP admin writes, OAuth2 write-back,
 * lock/unlock, a crypto-worker restart); the main thread's vault watcher bumps it for writes made outside
 * the daemon. Caches of vault files (catalog, tokens, vault meta, secret records, decrypted secrets) are
 * keyed on it, so a warm call reads one shared word instead of making a filesystem syscall.
 *
 * The same buffer carries hit/miss counters per cache (Atomics.add: a few ns, no lock) so the status
 * frame on the main thread can report every thread's caches. Holds counters only: no secret, no I/O.
 * Runs on every thread of the daemon.
 */

/** Caches that report hits and misses (the order fixes their slots in the buffer). */
const CACHE_NAMES = ['catalog', 'tokens', 'vaultMeta', 'records', 'secrets', 'dev'] as const;
export type CacheName = (typeof CACHE_NAMES)[number];

const GEN = 0;
const slotOf = (name: CacheName, miss: boolean): number => 1 + CACHE_NAMES.indexOf(name) * 2 + (miss ? 1 : 0);
const WORDS = 1 + CACHE_NAMES.length * 2;

export class Generation {
  readonly buffer: SharedArrayBuffer;
  private readonly words: Int32Array;

  /** A fresh counter (main thread), or a view of one received in workerData. */
  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(WORDS * Int32Array.BYTES_PER_ELEMENT)) {
    if (buffer.byteLength < WORDS * Int32Array.BYTES_PER_ELEMENT) {
      throw new TypeError('generation buffer too small');
    }
    this.buffer = buffer;
    this.words = new Int32Array(buffer, 0, WORDS);
  }

  current(): number {
    return Atomics.load(this.words, GEN);
  }

  /** Something in the vault changed: every cache keyed on the generation reloads on its next use. */
  bump(): number {
    return Atomics.add(this.words, GEN, 1) + 1;
  }

  count(name: CacheName, hit: boolean): void {
    Atomics.add(this.words, slotOf(name, !hit), 1);
  }

  /** `{generation, <cache>Hits, <cache>Misses …}` for the status frame. */
  stats(): Record<string, number> {
    const out: Record<string, number> = { generation: this.current() };
    for (const name of CACHE_NAMES) {
      out[`${name}CacheHits`] = Atomics.load(this.words, slotOf(name, false));
      out[`${name}CacheMisses`] = Atomics.load(this.words, slotOf(name, true));
    }
    return out;
  }
}

/**
 * `load()`'s value, cached until the generation changes. The generation is read BEFORE loading, so a
 * bump that lands during a load makes the next call load again (never a stale value kept under the new
 * generation). A failed load is not kept: the next call retries (a half-written file fails the load; the
 * write's later events bump again anyway).
 */
export function perGeneration<T>(
  gen: Generation,
  name: CacheName,
  load: () => Promise<T>,
): (() => Promise<T>) & { drop(): void } {
  let at = -1;
  let value: Promise<T> | undefined;
  const get = (): Promise<T> => {
    const now = gen.current();
    if (value && at === now) {
      gen.count(name, true);
      return value;
    }
    gen.count(name, false);
    at = now;
    const loading = load();
    value = loading;
    loading.catch(() => {
      if (value === loading) value = undefined;
    });
    return loading;
  };
  return Object.assign(get, {
    drop: () => {
      value = undefined;
    },
  });
}

/** Keyed variant (one entry per key, e.g. secret records by id); all entries go at once on a bump. */
export function perGenerationMap<K, V>(
  gen: Generation,
  name: CacheName,
  load: (key: K) => Promise<V>,
): ((key: K) => Promise<V>) & { delete(key: K): void } {
  let at = -1;
  const entries = new Map<K, Promise<V>>();
  const get = (key: K): Promise<V> => {
    const now = gen.current();
    if (at !== now) {
      entries.clear();
      at = now;
    }
    const cached = entries.get(key);
    if (cached) {
      gen.count(name, true);
      return cached;
    }
    gen.count(name, false);
    const loading = load(key);
    entries.set(key, loading);
    loading.catch(() => {
      if (entries.get(key) === loading) entries.delete(key);
    });
    return loading;
  };
  return Object.assign(get, { delete: (key: K) => void entries.delete(key) });
}

/**
 * Decrypted-secret cache of one request worker, so a warm call makes no crypto-worker round trip. Runs in
 * each request worker thread (never the main thread; the KEK stays in the crypto worker).
 *
 * - Values live in libsodium secure memory (sodium_malloc: guard pages, mlock, excluded from core dumps
 *   where supported), one allocation per entry, zeroed and freed on eviction.
 * - Keyed by secret id + revision, where the revision is the vault generation the value was decrypted at
 *   (src/core/threads/generation.ts): every change of a value (rotate, delete, OAuth2 write-back, a hand edit)
 *   and every lock/unlock bumps the generation, and a bump drops the WHOLE cache at the next access.
 * - At most `maxEntries` (256) entries, evicted oldest first; each lives at most `ttlMs` (5 minutes) from
 *   when it was decrypted, enforced by a timer (an idle worker does not keep values past their TTL).
 * Entries are not kept no-access between uses like the KEK is: toggling page protection is an mprotect
 * syscall per call, which is what this cache exists to avoid. See docs/security.md ("Decrypted-secret
 * cache") for the trade-off.
 */
import type { Generation } from '../core/threads/generation.js';
import { sodium } from '../stores/vault/sodium.js';

const SECRET_CACHE_MAX_ENTRIES = 256;
const SECRET_CACHE_TTL_MS = 5 * 60 * 1000;

interface Entry {
  readonly mem: Buffer;
  readonly length: number;
  readonly expiresAt: number;
}

export interface SecretCacheOptions {
  readonly maxEntries?: number;
  readonly ttlMs?: number;
  /** Clock (tests). */
  readonly now?: () => number;
}

export class SecretCache {
  private readonly entries = new Map<string, Entry>();
  private readonly maxEntries: number;
  private readonly ttlMs: number;
  private readonly now: () => number;
  /** The generation every entry was decrypted at. */
  private at: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly generation: Generation,
    opts: SecretCacheOptions = {},
  ) {
    this.maxEntries = opts.maxEntries ?? SECRET_CACHE_MAX_ENTRIES;
    this.ttlMs = opts.ttlMs ?? SECRET_CACHE_TTL_MS;
    this.now = opts.now ?? Date.now;
    this.at = generation.current();
  }

  get size(): number {
    this.sync();
    return this.entries.size;
  }

  /** The cached value of `id`, or undefined (and a miss is counted). */
  get(id: string): string | undefined {
    this.sync();
    let e = this.entries.get(id);
    if (e && e.expiresAt <= this.now()) {
      this.evict(id);
      e = undefined;
    }
    this.generation.count('secrets', e !== undefined);
    return e?.mem.toString('utf8', 0, e.length);
  }

  /**
   * Keep `value` of `id`, decrypted at generation `at` (read BEFORE asking the crypto worker: a value
   * whose generation has moved on meanwhile may be stale and is not kept).
   */
  set(id: string, value: string, at: number): void {
    this.sync();
    if (at !== this.at) return;
    this.evict(id);
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.evict(oldest);
    }
    const length = Buffer.byteLength(value, 'utf8');
    const mem = sodium.sodium_malloc(Math.max(1, length));
    mem.write(value, 0, 'utf8');
    this.entries.set(id, { mem, length, expiresAt: this.now() + this.ttlMs });
    this.schedule();
  }

  /** Zero and free every entry. */
  clear(): void {
    for (const id of [...this.entries.keys()]) this.evict(id);
  }

  /** A bump since the entries were decrypted: drop them all (rotate/delete/lock must take effect at once). */
  private sync(): void {
    const now = this.generation.current();
    if (now === this.at) return;
    this.clear();
    this.at = now;
  }

  private evict(id: string): void {
    const e = this.entries.get(id);
    if (!e) return;
    this.entries.delete(id);
    sodium.sodium_memzero(e.mem);
    sodium.sodium_free(e.mem);
    if (this.entries.size === 0 && this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  /** One timer for the oldest entry (insertion order = expiry order: every entry gets the same TTL). */
  private schedule(): void {
    if (this.timer) return;
    const first = this.entries.values().next().value;
    if (!first) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        const t = this.now();
        for (const [id, e] of [...this.entries]) {
          if (e.expiresAt > t) break;
          this.evict(id);
        }
        this.schedule();
      },
      Math.max(0, first.expiresAt - this.now()),
    );
    this.timer.unref();
  }
}

/**
 * `decrypt` through the cache: hits answer at once, the misses go to the crypto worker in one request
 * and are kept for the next call.
 */
export function cachedDecrypt(
  cache: SecretCache,
  generation: Generation,
  decrypt: (ids: readonly string[]) => Promise<Map<string, string>>,
): (ids: readonly string[]) => Promise<Map<string, string>> {
  return async (ids) => {
    const out = new Map<string, string>();
    const missing: string[] = [];
    for (const id of ids) {
      const v = cache.get(id);
      if (v === undefined) missing.push(id);
      else out.set(id, v);
    }
    if (missing.length === 0) return out;
    const at = generation.current();
    const fresh = await decrypt(missing);
    for (const [id, v] of fresh) {
      cache.set(id, v, at);
      out.set(id, v);
    }
    return out;
  };
}

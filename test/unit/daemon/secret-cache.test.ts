import { afterEach, describe, expect, it, vi } from 'vitest';
import { Generation, perGeneration } from '../../../src/core/threads/generation.js';
import { cachedDecrypt, SecretCache } from '../../../src/request-worker/secret-cache.js';
import { sodium } from '../../../src/stores/vault/sodium.js';

/** Spy on zeroing: records a copy of each zeroed buffer's bytes right after sodium_memzero ran. */
function watchZeroing(): { zeroed: Buffer[]; freed: number } {
  const seen = { zeroed: [] as Buffer[], freed: 0 };
  const memzero = sodium.sodium_memzero.bind(sodium);
  const free = sodium.sodium_free.bind(sodium);
  vi.spyOn(sodium, 'sodium_memzero').mockImplementation((buf: Uint8Array) => {
    memzero(buf);
    seen.zeroed.push(Buffer.from(buf));
  });
  vi.spyOn(sodium, 'sodium_free').mockImplementation((buf: Buffer) => {
    seen.freed++;
    free(buf);
  });
  return seen;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('SecretCache', () => {
  it('answers a hit from secure memory and counts hits and misses', () => {
    const gen = new Generation();
    const cache = new SecretCache(gen);
    expect(cache.get('s1')).toBeUndefined();
    cache.set('s1', 'sk-one', gen.current());
    expect(cache.get('s1')).toBe('sk-one');
    expect(gen.stats()).toMatchObject({ secretsCacheHits: 1, secretsCacheMisses: 1 });
    cache.clear();
  });

  it('keeps at most maxEntries, evicting (and zeroing) the oldest first', () => {
    const seen = watchZeroing();
    const gen = new Generation();
    const cache = new SecretCache(gen, { maxEntries: 3 });
    for (const id of ['a', 'b', 'c', 'd']) cache.set(id, `value-${id}`, gen.current());
    expect(cache.size).toBe(3);
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('d')).toBe('value-d');
    expect(seen.zeroed).toHaveLength(1);
    expect(seen.zeroed[0]?.every((b) => b === 0)).toBe(true);
    expect(seen.freed).toBe(1);
    cache.clear();
    expect(seen.freed).toBe(4);
  });

  it('expires an entry after its TTL (on access, and by its timer with no access)', async () => {
    let now = 1000;
    const gen = new Generation();
    const cache = new SecretCache(gen, { ttlMs: 50, now: () => now });
    cache.set('s1', 'v1', gen.current());
    now += 49;
    expect(cache.get('s1')).toBe('v1');
    now += 1;
    expect(cache.get('s1')).toBeUndefined();

    const seen = watchZeroing();
    const real = new SecretCache(gen, { ttlMs: 30 });
    real.set('s2', 'v2', gen.current());
    await vi.waitFor(() => expect(seen.freed).toBe(1), { timeout: 2000, interval: 10 });
    expect(seen.zeroed[0]?.every((b) => b === 0)).toBe(true);
    expect(real.size).toBe(0);
  });

  it('drops every entry (zeroed) on a generation bump', () => {
    const seen = watchZeroing();
    const gen = new Generation();
    const cache = new SecretCache(gen);
    cache.set('a', 'secret-a', gen.current());
    cache.set('b', 'secret-b', gen.current());
    gen.bump(); // e.g. rotate, delete or lock in another thread
    expect(cache.get('a')).toBeUndefined();
    expect(cache.size).toBe(0);
    expect(seen.zeroed).toHaveLength(2);
    expect(seen.zeroed.every((b) => b.every((x) => x === 0))).toBe(true);
  });

  it('does not keep a value decrypted before a bump that landed during the round trip', async () => {
    const gen = new Generation();
    const cache = new SecretCache(gen);
    let calls = 0;
    const decrypt = cachedDecrypt(cache, gen, async (ids) => {
      calls++;
      gen.bump(); // a rotate lands while the crypto worker answers
      return new Map(ids.map((id) => [id, `old-${id}`]));
    });
    expect((await decrypt(['s'])).get('s')).toBe('old-s');
    expect(cache.size).toBe(0);
    await decrypt(['s']);
    expect(calls).toBe(2);
  });

  it('a warm decrypt makes no round trip; only the misses are asked for', async () => {
    const gen = new Generation();
    const cache = new SecretCache(gen);
    const asked: string[][] = [];
    const decrypt = cachedDecrypt(cache, gen, async (ids) => {
      asked.push([...ids]);
      return new Map(ids.map((id) => [id, `v-${id}`]));
    });
    await decrypt(['a']);
    const both = await decrypt(['a', 'b']);
    expect([...both]).toEqual([
      ['a', 'v-a'],
      ['b', 'v-b'],
    ]);
    await decrypt(['a', 'b']);
    expect(asked).toEqual([['a'], ['b']]);
    cache.clear();
  });
});

describe('perGeneration', () => {
  it('loads once per generation and retries a failed load', async () => {
    const gen = new Generation();
    let n = 0;
    let fail = false;
    const get = perGeneration(gen, 'catalog', async () => {
      n++;
      if (fail) throw new Error('half-written file');
      return n;
    });
    expect(await get()).toBe(1);
    expect(await get()).toBe(1);
    gen.bump();
    fail = true;
    await expect(get()).rejects.toThrow('half-written');
    fail = false;
    expect(await get()).toBe(3);
    expect(gen.stats()).toMatchObject({ generation: 1, catalogCacheHits: 1, catalogCacheMisses: 3 });
  });
});

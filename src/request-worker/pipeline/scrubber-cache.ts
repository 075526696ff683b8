/**
 * The compiled reflected-secret matchers of this thread, by the secrets they match. Compiling the automaton
 * costs far more than scrubbing a 1 KiB reply, so a thread keeps the last few.
 *
 * The matchers hold the secret values (and their encoded forms) as ordinary heap strings, so they follow
 * the same lifetime rules as the decrypted-secret cache (src/request-worker/secret-cache.ts,
 * docs/security.md): at most CACHE_SIZE sets; each dropped SCRUBBER_TTL_MS after its last use (an unref'd
 * timer: an idle worker keeps nothing past it); all dropped at the next call after the vault generation
 * moved (rotate, delete, lock …), and at shutdown. JS strings cannot be zeroed: dropping the last
 * reference is as far as this goes, and the GC reuses the memory when it will.
 */
import type { Generation } from '../../core/threads/generation.js';
import { createScrubber, type ScrubMatcher, type ScrubSecret } from './scrub.js';

const CACHE_SIZE = 32;
export const SCRUBBER_TTL_MS = 5 * 60 * 1000;

interface Entry {
  readonly key: string;
  readonly secrets: readonly ScrubSecret[];
  readonly matcher: ScrubMatcher;
  usedAt: number;
}

/** By key, least recently built or looked up by key first. */
const cache = new Map<string, Entry>();
/**
 * The previous call's entry. Calls of one capability follow each other with the same values (often the
 * very same strings, from the secret cache), so comparing element-wise first skips building and hashing the
 * key, which grows with every value (~0.35 µs a call in a micro-benchmark).
 */
let last: Entry | undefined;
let generation: Generation | undefined;
let at = 0;
let timer: NodeJS.Timeout | undefined;

/** Tie the cache to the vault generation (a request worker at start; the in-process CLI has none). */
export function bindScrubberCache(g: Generation): void {
  generation = g;
  at = g.current();
}

/** Drop every matcher (a generation bump, shutdown, tests). */
export function dropScrubbers(): void {
  cache.clear();
  last = undefined;
  if (timer) clearTimeout(timer);
  timer = undefined;
}

function sameSecrets(a: readonly ScrubSecret[], b: readonly ScrubSecret[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as ScrubSecret;
    const y = b[i] as ScrubSecret;
    if (x.value !== y.value || x.name !== y.name || (x.kind ?? 'value') !== (y.kind ?? 'value')) {
      return false;
    }
  }
  return true;
}

function evict(e: Entry): void {
  cache.delete(e.key);
  if (last === e) last = undefined;
}

/** One timer for the entry unused longest; it drops what expired and re-arms for the next. */
function schedule(now: number): void {
  if (timer || cache.size === 0) return;
  let oldest = Infinity;
  for (const e of cache.values()) oldest = Math.min(oldest, e.usedAt);
  timer = setTimeout(
    () => {
      timer = undefined;
      const t = Date.now();
      for (const e of [...cache.values()]) if (e.usedAt + SCRUBBER_TTL_MS <= t) evict(e);
      schedule(t);
    },
    Math.max(0, oldest + SCRUBBER_TTL_MS - now),
  );
  timer.unref();
}

/** The matcher for these secrets (see the header for how long it is kept). */
export function scrubberFor(secrets: readonly ScrubSecret[]): ScrubMatcher {
  if (generation) {
    const g = generation.current();
    if (g !== at) {
      dropScrubbers();
      at = g;
    }
  }
  const now = Date.now();
  if (last && sameSecrets(last.secrets, secrets)) {
    last.usedAt = now;
    return last.matcher;
  }
  let key = '';
  for (const s of secrets) key += `${s.kind ?? 'value'}\0${s.name}\0${s.value}\0`;
  let e = cache.get(key);
  if (e) {
    cache.delete(key);
    cache.set(key, e);
    e.usedAt = now;
  } else {
    e = { key, secrets, matcher: createScrubber(secrets), usedAt: now };
    cache.set(key, e);
    if (cache.size > CACHE_SIZE) evict(cache.values().next().value as Entry);
    schedule(now);
  }
  last = e;
  return e.matcher;
}

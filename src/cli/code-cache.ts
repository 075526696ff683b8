/**
 * Runs a CommonJS file with a V8 code cache beside it (CLI, main thread). Why: `aivault invoke` is what
 * agents run per request and the fast path's bundle is ~180 KB; compiling it, and then lazily compiling
 * the functions one call touches, was ~7 ms of every call on the bench machine (issue 12: invoke ≤ 1.3×
 * `node -e 0`). Node 20 has no `module.enableCompileCache`, so this does what it does: compile through
 * `vm.Script` with the cached data, and after the first use write the cache (which then holds every
 * function that use compiled).
 *
 * The cache file sits next to the code and holds a copy of the code it was made from, compared byte for
 * byte (memcmp) before V8 sees the cache: V8 checks a cache only against the source's length (and its own
 * version and flags), so an edited file of the same length must never meet an old cache. Not a hash:
 * loading node:crypto alone cost ~4 ms of the ~7 this saves (the fast path never loads it otherwise), and
 * hashing 180 KB in JS as much. Whoever can write the cache can write the code beside it: no new trust. A
 * cache V8 rejects (another Node, other flags, garbage) costs one normal compile and is rewritten; a
 * directory that is not writable (a root-owned global install) just runs without one.
 *
 * Cache file: [source length, u32 LE][the source's bytes][V8 cached data].
 */
import { closeSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { Script } from 'node:vm';

export interface CachedModule<T> {
  readonly exports: T;
  /** Whether the cache was there and V8 took it. */
  readonly cacheUsed: boolean;
  /** Write the cache if there was none (or V8 rejected it). Call once the work is done: it then covers
   *  the functions that work compiled. Never throws. */
  saveCache(): void;
}

/** The cache file for `file`. */
export function codeCachePath(file: string): string {
  return `${file}.v8cache`;
}

/** The cached data in `cache` if it was made from exactly `source`, else undefined. */
function cachedDataFor(cache: Buffer, source: Buffer): Buffer | undefined {
  if (cache.length < 4 || cache.readUInt32LE(0) !== source.length) return undefined;
  const end = 4 + source.length;
  if (cache.length <= end || !cache.subarray(4, end).equals(source)) return undefined;
  return cache.subarray(end);
}

export function loadWithCodeCache<T>(file: string): CachedModule<T> {
  const bytes = readFileSync(file);
  const source = bytes.toString('utf8');
  const cacheFile = codeCachePath(file);
  let cachedData: Buffer | undefined;
  try {
    cachedData = cachedDataFor(readFileSync(cacheFile), bytes);
  } catch {
    // first run, or a read-only install that never got one
  }
  const script = new Script(
    `(function (exports, require, module, __filename, __dirname) {${source}\n})`,
    cachedData ? { filename: file, cachedData } : { filename: file },
  );
  const cacheUsed = cachedData !== undefined && script.cachedDataRejected !== true;
  const mod = { exports: {} as T };
  const run = script.runInThisContext() as (
    exports: T,
    require: NodeJS.Require,
    module: { exports: T },
    filename: string,
    dir: string,
  ) => void;
  run(mod.exports, createRequire(file), mod, file, dirname(file));
  return {
    exports: mod.exports,
    cacheUsed,
    saveCache() {
      if (cacheUsed) return;
      const tmp = `${cacheFile}.${process.pid}.tmp`;
      let fd: number;
      try {
        // Opened before the cache is serialized: in a directory this user cannot write (a root-owned
        // global install) every call would otherwise pay for createCachedData and then fail.
        fd = openSync(tmp, 'wx', 0o644);
      } catch {
        return;
      }
      try {
        const length = Buffer.alloc(4);
        length.writeUInt32LE(bytes.length, 0);
        writeFileSync(fd, Buffer.concat([length, bytes, script.createCachedData()]));
        closeSync(fd);
        renameSync(tmp, cacheFile); // atomic: parallel first runs each write whole files
      } catch {
        try {
          closeSync(fd);
        } catch {
          // already closed
        }
        rmSync(tmp, { force: true });
      }
    },
  };
}

/**
 * Runs a CommonJS file with a V8 code cache beside it (CLI, main thread). Why: `aivault invoke` is what
 * agents run per request and the fast path's bundle is ~180 KB; compiling it, and then lazily compiling
 * the functions one call touches, was ~7 ms of every call on the bench machine (issue 12: invoke ≤ 1.3×
 * `node -e 0`). Node 20 has no `module.enableCompileCache`, so this does what it does: compile through
 * `vm.Script` with the cached data, and after the first use write the cache (which then holds every
 * function that use compiled).
 *
 * The cache file sits next to the code and is named by a hash of the code's text: V8 checks a cache only
 * against the source's length (and its own version and flags), so an edited file of the same length must
 * never meet an old cache. Whoever can write the cache can write the code beside it: no new trust. A cache
 * V8 rejects (another Node, other flags, garbage) costs one normal compile and is rewritten; a directory
 * that is not writable (a root-owned global install) just runs without one.
 */
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
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

/** The cache file for `file` holding `source`. */
export function codeCachePath(file: string, source: string): string {
  return `${file}.${createHash('sha256').update(source).digest('hex').slice(0, 16)}.v8cache`;
}

export function loadWithCodeCache<T>(file: string): CachedModule<T> {
  const source = readFileSync(file, 'utf8');
  const cacheFile = codeCachePath(file, source);
  let cachedData: Buffer | undefined;
  try {
    cachedData = readFileSync(cacheFile);
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
      try {
        writeFileSync(tmp, script.createCachedData(), { mode: 0o644 });
        renameSync(tmp, cacheFile); // atomic: parallel first runs each write whole files
      } catch {
        rmSync(tmp, { force: true });
      }
    },
  };
}

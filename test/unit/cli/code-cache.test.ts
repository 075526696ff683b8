/**
 * The CLI bin runs its fast path through a V8 code cache (src/cli/code-cache.ts): the cache is written
 * after the first use and taken after that; a rejected (garbage) cache still runs the code and is
 * rewritten; an edited file never meets the old cache; a cache that cannot be written runs without one.
 * Each load runs in its own process, as the bin does: within one process V8's own compilation cache
 * would answer a second compile of the same text before the cached data is even looked at.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { buildSync } from 'esbuild';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { codeCachePath } from '../../../src/cli/code-cache.js';

const SOURCE = `
exports.add = function add(a, b) { return a + b; };
exports.dir = __dirname;
exports.file = __filename;
exports.sep = require('node:path').sep;
`;
/** src/cli/code-cache.ts as one CommonJS file in a world-readable directory (the children run it with
 *  plain node, one of them as another user, so nothing under the checkout needs to be readable). */
let moduleDir: string;
let MODULE: string;
beforeAll(() => {
  moduleDir = mkdtempSync(join(tmpdir(), 'aivault-code-cache-mod-'));
  chmodSync(moduleDir, 0o755);
  MODULE = join(moduleDir, 'code-cache.cjs');
  buildSync({
    entryPoints: [resolve('src/cli/code-cache.ts')],
    outfile: MODULE,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    logLevel: 'warning',
  });
  chmodSync(MODULE, 0o644);
});
afterAll(() => rmSync(moduleDir, { recursive: true, force: true }));

/** Load `file` in a new process, call add(a, b), save the cache; what it saw. */
function load(
  file: string,
  a: number,
  b: number,
  as?: { uid: number; gid: number },
): { cacheUsed: boolean; sum: number; dir: string; name: string } {
  const code = `
    const { loadWithCodeCache } = require(${JSON.stringify(MODULE)});
    const m = loadWithCodeCache(${JSON.stringify(file)});
    const out = { cacheUsed: m.cacheUsed, sum: m.exports.add(${a}, ${b}), dir: m.exports.dir, name: m.exports.file };
    m.saveCache();
    process.stdout.write(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['-e', code], {
    encoding: 'utf8',
    ...(as ?? {}),
  });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as { cacheUsed: boolean; sum: number; dir: string; name: string };
}

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'aivault-code-cache-'));
  file = join(dir, 'fast.js');
  writeFileSync(file, SOURCE);
});
afterEach(() => {
  chmodSync(dir, 0o700);
  rmSync(dir, { recursive: true, force: true });
});

describe('loadWithCodeCache', () => {
  it('runs the file as CommonJS, writes the cache after the first use, takes it after that', () => {
    const first = load(file, 2, 3);
    expect(first).toEqual({ cacheUsed: false, sum: 5, dir, name: file });
    expect(existsSync(codeCachePath(file))).toBe(true);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(load(file, 4, 5)).toMatchObject({ cacheUsed: true, sum: 9 });
  });

  it('a garbage cache is rejected, the code still runs, and the cache is rewritten', () => {
    const header = Buffer.alloc(4);
    header.writeUInt32LE(Buffer.byteLength(SOURCE), 0);
    // Garbage after a matching copy of the source reaches V8, which rejects it; plain garbage never does.
    for (const garbage of [
      Buffer.alloc(4096, 7),
      Buffer.concat([header, Buffer.from(SOURCE), Buffer.alloc(4096, 7)]),
    ]) {
      writeFileSync(codeCachePath(file), garbage);
      expect(load(file, 1, 1)).toMatchObject({ cacheUsed: false, sum: 2 });
      expect(load(file, 1, 2)).toMatchObject({ cacheUsed: true, sum: 3 });
    }
  });

  it('an edited file of the same length never meets the old cache', () => {
    load(file, 0, 0);
    const edited = SOURCE.replace('a + b', 'a * b');
    expect(edited.length).toBe(SOURCE.length);
    writeFileSync(file, edited);
    expect(load(file, 3, 4)).toMatchObject({ cacheUsed: false, sum: 12 });
    expect(load(file, 3, 5)).toMatchObject({ cacheUsed: true, sum: 15 });
  });

  it('a directory this user cannot write runs without a cache and leaves nothing behind', () => {
    // As root (CI), the load runs as nobody; otherwise the directory is made read-only.
    const root = process.getuid?.() === 0;
    chmodSync(dir, root ? 0o755 : 0o555);
    const as = root ? { uid: 65534, gid: 65534 } : undefined;
    expect(load(file, 2, 2, as)).toMatchObject({ cacheUsed: false, sum: 4 });
    expect(load(file, 2, 3, as)).toMatchObject({ cacheUsed: false, sum: 5 });
    expect(readdirSync(dir)).toEqual(['fast.js']);
    chmodSync(dir, 0o700);
  });

  it('a cache that cannot be written (a directory in its place) runs without one, leaving nothing', () => {
    mkdirSync(codeCachePath(file));
    expect(load(file, 1, 2)).toMatchObject({ cacheUsed: false, sum: 3 });
    expect(load(file, 1, 2)).toMatchObject({ cacheUsed: false, sum: 3 });
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

/**
 * The CLI bin runs its fast path through a V8 code cache (src/cli/code-cache.ts): the cache is written
 * after the first use and taken after that; a rejected (garbage) cache still runs the code and is
 * rewritten; an edited file never meets the old cache; a cache that cannot be written runs without one.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { codeCachePath, loadWithCodeCache } from '../../../src/cli/code-cache.js';

interface Mod {
  add(a: number, b: number): number;
  dir: string;
  file: string;
}

const SOURCE = `
exports.add = function add(a, b) { return a + b; };
exports.dir = __dirname;
exports.file = __filename;
exports.path = require('node:path').sep;
`;

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'aivault-code-cache-'));
  file = join(dir, 'fast.js');
  writeFileSync(file, SOURCE);
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('loadWithCodeCache', () => {
  it('runs the file as CommonJS, writes the cache after the first use, takes it after that', () => {
    const first = loadWithCodeCache<Mod>(file);
    expect(first.exports.add(2, 3)).toBe(5);
    expect(first.exports.dir).toBe(dir);
    expect(first.exports.file).toBe(file);
    expect(first.cacheUsed).toBe(false);
    expect(existsSync(codeCachePath(file, SOURCE))).toBe(false);
    first.saveCache();
    expect(existsSync(codeCachePath(file, SOURCE))).toBe(true);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);

    const second = loadWithCodeCache<Mod>(file);
    expect(second.cacheUsed).toBe(true);
    expect(second.exports.add(4, 5)).toBe(9);
  });

  it('a garbage cache is rejected, the code still runs, and the cache is rewritten', () => {
    writeFileSync(codeCachePath(file, SOURCE), Buffer.alloc(4096, 7));
    const m = loadWithCodeCache<Mod>(file);
    expect(m.cacheUsed).toBe(false);
    expect(m.exports.add(1, 1)).toBe(2);
    m.saveCache();
    expect(loadWithCodeCache<Mod>(file).cacheUsed).toBe(true);
  });

  it('an edited file of the same length never meets the old cache', () => {
    loadWithCodeCache<Mod>(file).saveCache();
    const edited = SOURCE.replace('a + b', 'a * b');
    expect(edited.length).toBe(SOURCE.length);
    writeFileSync(file, edited);
    expect(codeCachePath(file, edited)).not.toBe(codeCachePath(file, SOURCE));
    const m = loadWithCodeCache<Mod>(file);
    expect(m.cacheUsed).toBe(false);
    expect(m.exports.add(3, 4)).toBe(12);
  });

  it('a cache that cannot be written (here: a directory in its place) runs without one, leaving nothing', () => {
    mkdirSync(codeCachePath(file, SOURCE));
    const m = loadWithCodeCache<Mod>(file);
    expect(m.cacheUsed).toBe(false);
    expect(() => m.saveCache()).not.toThrow();
    expect(m.exports.add(1, 2)).toBe(3);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});

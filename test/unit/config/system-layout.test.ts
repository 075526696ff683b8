// System-mode layout file: the hand-written shape check (every CLI start reads it, so no schema library)
// accepts exactly what `aivault system install` writes and refuses everything else as storage_corrupt.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseSystemLayout, readSystemLayout, systemLayoutFor } from '../../../src/core/config/system.js';
import { tempDir } from '../vault/fixtures/helpers.js';

const good = systemLayoutFor('/', 'aivault', 'aivault');

describe('parseSystemLayout', () => {
  it('accepts the layout install writes', () => {
    expect(parseSystemLayout(JSON.parse(JSON.stringify(good)))).toEqual(good);
  });

  it.each([
    ['not an object', 'x'],
    ['null', null],
    ['an array', [good]],
    ['another version', { ...good, version: 2 }],
    ['a missing field', { ...good, callerSocket: undefined }],
    ['an unknown key', { ...good, extra: 1 }],
    ['an empty user', { ...good, user: '' }],
    ['a numeric group', { ...good, group: 5 }],
    ['a relative path', { ...good, vaultDir: 'var/lib/aivault' }],
  ])('refuses %s', (_why, raw) => {
    expect(parseSystemLayout(JSON.parse(JSON.stringify(raw)) as unknown)).toBeUndefined();
  });
});

describe('readSystemLayout', () => {
  it('absent file → undefined; valid file → layout; broken file → storage_corrupt', () => {
    const dir = tempDir('aivault-syslayout-');
    const file = join(dir, 'system.json');
    expect(readSystemLayout(file)).toBeUndefined();
    writeFileSync(file, JSON.stringify(good));
    expect(readSystemLayout(file)).toEqual(good);
    writeFileSync(file, JSON.stringify({ ...good, runDir: 'run' }));
    expect(() => readSystemLayout(file)).toThrow(expect.objectContaining({ code: 'storage_corrupt' }));
    writeFileSync(file, '{');
    expect(() => readSystemLayout(file)).toThrow(expect.objectContaining({ code: 'storage_corrupt' }));
  });
});

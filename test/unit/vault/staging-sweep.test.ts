/**
 * Staging files (`.tmp-<name>-<pid>-<hex>`) left by writers killed between create and rename are swept
 * under the vault lock, once per process per vault, and only when that cannot hit a live write: older than
 * a minute and the writer pid gone, or older than an hour whatever the pid says.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sweepAbandonedStaging, withVaultLock } from '../../../src/stores/vault/store.js';

/** A pid that existed and has exited. */
const deadPid = spawnSync(process.execPath, ['-e', '0']).pid as number;

let root: string;
beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'aivault-sweep-'));
  mkdirSync(join(root, 'secrets'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

function stage(dir: string, pid: number, ageMs: number, tag: string): string {
  const path = join(dir, `.tmp-${tag}.json-${pid}-${'ab12cd34ef56'}`);
  writeFileSync(path, 'ciphertext');
  const t = (Date.now() - ageMs) / 1000;
  utimesSync(path, t, t);
  return path;
}

describe('abandoned staging files', () => {
  it('removes only files whose writer is gone (and > 1 min old) or that are > 1 h old', async () => {
    const secrets = join(root, 'secrets');
    const deadOld = stage(secrets, deadPid, 2 * 60_000, 'dead-old');
    const deadOldRoot = stage(root, deadPid, 2 * 60_000, 'broker');
    const deadFresh = stage(secrets, deadPid, 1_000, 'dead-fresh');
    const liveOld = stage(secrets, process.pid, 2 * 60_000, 'live-old');
    const liveAbandoned = stage(secrets, process.pid, 2 * 60 * 60_000, 'live-abandoned');
    const record = join(secrets, 's1.json');
    writeFileSync(record, '{}');
    utimesSync(record, 0, 0);

    expect(await sweepAbandonedStaging(root)).toBe(3);
    expect(existsSync(deadOld)).toBe(false);
    expect(existsSync(deadOldRoot)).toBe(false);
    expect(existsSync(liveAbandoned)).toBe(false);
    expect(existsSync(deadFresh)).toBe(true);
    expect(existsSync(liveOld)).toBe(true);
    expect(existsSync(record)).toBe(true);
  });

  it('the first vault lock a process takes sweeps; later ones do not rescan', async () => {
    const first = stage(join(root, 'secrets'), deadPid, 5 * 60_000, 'a');
    await withVaultLock(root, async () => undefined);
    expect(existsSync(first)).toBe(false);
    const second = stage(join(root, 'secrets'), deadPid, 5 * 60_000, 'b');
    await withVaultLock(root, async () => undefined);
    expect(existsSync(second)).toBe(true);
    expect(readdirSync(join(root, 'secrets'))).toEqual([second.split('/').pop()]);
  });
});

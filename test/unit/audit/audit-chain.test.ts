// Tamper-evident audit log: seals + per-writer chains across day files, retention, concurrent writers,
// and an attacker who edits, deletes, inserts, reorders or truncates lines without the key.
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../../src/stores/audit/index.js';
import { vaultPaths } from '../../../src/stores/vault/index.js';
import { configFor, tempDir } from '../vault/fixtures/helpers.js';

const DAY = 86_400_000;
const BASE = Date.UTC(2026, 2, 1, 12);
const KEY = randomBytes(32);

function logs(n: number, key: Uint8Array | undefined = KEY) {
  const cfg = configFor(tempDir('aivault-chain-'));
  const make = (keepOpen: boolean) =>
    new AuditLog(cfg, vaultPaths(cfg), { keepOpen, sealKey: async () => key });
  return Array.from({ length: n }, (_, i) => make(i % 2 === 0));
}

/** Three day files written by two writers, interleaved; returns the log and file paths oldest first. */
async function threeDays(): Promise<{ log: AuditLog; files: string[] }> {
  const [a, b] = logs(2) as [AuditLog, AuditLog];
  for (let d = 0; d < 3; d++) {
    for (let i = 0; i < 4; i++) {
      await a.append({ kind: 'invoke', tsMs: BASE + d * DAY + i, capability: `a/${d}/${i}` });
      await b.append({ kind: 'invoke', tsMs: BASE + d * DAY + i, capability: `b/${d}/${i}` });
    }
  }
  await Promise.all([a.close(), b.close()]);
  const files = readdirSync(a.dir)
    .sort()
    .map((f) => join(a.dir, f));
  return { log: a, files };
}

const lines = (f: string): string[] => readFileSync(f, 'utf8').split('\n').slice(0, -1);
const write = (f: string, ls: string[]): void => writeFileSync(f, ls.map((l) => `${l}\n`).join(''));
const name = (f: string): string => f.slice(f.lastIndexOf('/') + 1);

describe('audit chain', () => {
  it('verifies every event across day files', async () => {
    const { log, files } = await threeDays();
    expect(files).toHaveLength(3);
    expect(await log.verify(KEY)).toEqual({ ok: true, events: 24, files: 3, legacy: 0 });
  });

  it('a wrong key verifies nothing (and says the lines were sealed under another master key)', async () => {
    const { log, files } = await threeDays();
    const r = await log.verify(randomBytes(32));
    expect(r).toMatchObject({ ok: false, file: name(files[0]!), line: 1 });
    expect((r as { reason: string }).reason).toMatch(/another master key/);
  });

  // Index 0 = the oldest day file, 2 = the current one.
  describe.each([0, 2])('tampering with day file #%i', (which) => {
    it('edit: a changed field names its line', async () => {
      const { log, files } = await threeDays();
      const f = files[which]!;
      const ls = lines(f);
      ls[3] = ls[3]!.replace(/"capability":"(.)\//, '"capability":"x/');
      write(f, ls);
      expect(await log.verify(KEY)).toMatchObject({ ok: false, file: name(f), line: 4, problem: 'edited' });
    });

    it('delete: the next line of the same writer reports the gap', async () => {
      const { log, files } = await threeDays();
      const f = files[which]!;
      const ls = lines(f);
      ls.splice(2, 1); // lines alternate a, b: line 5 (old) is the next line of the deleted line's writer
      write(f, ls);
      expect(await log.verify(KEY)).toMatchObject({ ok: false, file: name(f), line: 4, problem: 'deleted' });
    });

    it('insert: a forged line and a replayed line are both caught', async () => {
      const { log, files } = await threeDays();
      const f = files[which]!;
      const ls = lines(f);
      const forged = [
        ...ls.slice(0, 2),
        '{"tsMs":1,"kind":"secret.delete","secretName":"X"}',
        ...ls.slice(2),
      ];
      write(f, forged);
      expect(await log.verify(KEY)).toMatchObject({ ok: false, file: name(f), line: 3, problem: 'unsealed' });
      const replayed = [...ls.slice(0, 4), ls[0]!, ...ls.slice(4)];
      write(f, replayed);
      expect(await log.verify(KEY)).toMatchObject({
        ok: false,
        file: name(f),
        line: 5,
        problem: 'reordered',
      });
    });

    it('reorder: two lines of the same writer swapped', async () => {
      const { log, files } = await threeDays();
      const f = files[which]!;
      const ls = lines(f);
      [ls[2], ls[4]] = [ls[4]!, ls[2]!];
      write(f, ls);
      const r = await log.verify(KEY);
      expect(r).toMatchObject({ ok: false, file: name(f), line: 3 });
      expect(['deleted', 'reordered']).toContain((r as { problem: string }).problem);
    });

    it('truncate: a cut last line is reported as a truncated tail', async () => {
      const { log, files } = await threeDays();
      const f = files[which]!;
      const text = readFileSync(f, 'utf8');
      writeFileSync(f, text.slice(0, text.length - 30));
      expect(await log.verify(KEY)).toMatchObject({
        ok: false,
        file: name(f),
        line: 8,
        problem: 'truncated',
      });
    });
  });

  it('retention deleting the oldest day files leaves the rest verifiable', async () => {
    const { log, files } = await threeDays();
    rmSync(files[0]!);
    expect(await log.verify(KEY)).toEqual({ ok: true, events: 16, files: 2, legacy: 0 });
    rmSync(files[1]!);
    expect(await log.verify(KEY)).toEqual({ ok: true, events: 8, files: 1, legacy: 0 });
  });

  it('deleting a middle day file is not mistaken for retention', async () => {
    const { log, files } = await threeDays();
    rmSync(files[1]!);
    expect(await log.verify(KEY)).toMatchObject({
      ok: false,
      file: name(files[2]!),
      line: 1,
      problem: 'deleted',
    });
  });

  it('a whole one-line writer deleted is caught by the next writer that linked to it', async () => {
    const [a, b, c] = logs(3) as [AuditLog, AuditLog, AuditLog];
    await a.append({ kind: 'invoke', tsMs: BASE, capability: 'a' });
    await b.append({ kind: 'secret.delete', tsMs: BASE + 1, secretName: 'ONE_SHOT' }); // a short CLI run
    await c.append({ kind: 'invoke', tsMs: BASE + 2, capability: 'c' });
    await Promise.all([a.close(), b.close(), c.close()]);
    const f = join(a.dir, readdirSync(a.dir)[0]!);
    const ls = lines(f);
    expect(await a.verify(KEY)).toMatchObject({ ok: true, events: 3 });
    write(f, [ls[0]!, ls[2]!]);
    expect(await a.verify(KEY)).toMatchObject({ ok: false, line: 2, problem: 'deleted' });
  });

  it('concurrent writers (kept-open and one-shot) keep every chain verifiable', async () => {
    const writers = logs(6);
    await Promise.all(
      writers.flatMap((w, wi) =>
        Array.from({ length: 40 }, (_, i) =>
          w.append({ kind: 'invoke', tsMs: BASE + (i % 2) * DAY, capability: `w${wi}/${i}` }),
        ),
      ),
    );
    await Promise.all(writers.map((w) => w.close()));
    expect(await writers[0]!.verify(KEY)).toEqual({ ok: true, events: 240, files: 2, legacy: 0 });
  });

  it('lines written before sealing existed are counted as legacy, not as verified', async () => {
    const cfg = configFor(tempDir('aivault-chain-'));
    const old = new AuditLog(cfg, vaultPaths(cfg));
    await old.append({ kind: 'invoke', tsMs: BASE, capability: 'legacy' });
    const sealed = new AuditLog(cfg, vaultPaths(cfg), { sealKey: async () => KEY });
    await sealed.append({ kind: 'invoke', tsMs: BASE + 1, capability: 'new' });
    expect(await sealed.verify(KEY)).toEqual({ ok: true, events: 1, files: 1, legacy: 1 });
    await old.append({ kind: 'invoke', tsMs: BASE + 2, capability: 'sneaked-in' });
    expect(await sealed.verify(KEY)).toMatchObject({ ok: false, line: 3, problem: 'unsealed' });
  });
});

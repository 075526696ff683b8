// Audit log: ordering, limits, cursors, retention, disabled logs, no unknown fields.
import {
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import * as nodeFs from 'node:fs';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { AuditLog } from '../../../src/stores/audit/index.js';
import { vaultPaths } from '../../../src/stores/vault/index.js';
import { configFor, tempDir } from '../vault/fixtures/helpers.js';

const DAY = 86_400_000;

// The kept-open writer writes warm batches with `writeSync` (src/stores/audit/day-file-writer.ts): a
// pass-through spy counts those syscalls.
vi.mock('node:fs', async (importOriginal) => {
  const real = await importOriginal<typeof nodeFs>();
  return { ...real, default: real, writeSync: vi.fn(real.writeSync) };
});
const writeSyncSpy = vi.mocked(nodeFs.writeSync);
const realWriteSync = (await vi.importActual<typeof nodeFs>('node:fs')).writeSync;

function logFor(extra: Record<string, string> = {}) {
  const cfg = configFor(tempDir('aivault-audit-'), extra);
  return new AuditLog(cfg, vaultPaths(cfg));
}

describe('AuditLog', () => {
  it('lists newest first across day files, with limit and beforeTsMs', async () => {
    const log = logFor();
    const base = Date.UTC(2026, 0, 10, 12);
    for (let i = 0; i < 6; i++)
      await log.append({ kind: 'secret.create', tsMs: base + (i * DAY) / 2, secretName: `S${i}` });
    const all = await log.list();
    expect(all.map((e) => e.secretName)).toEqual(['S5', 'S4', 'S3', 'S2', 'S1', 'S0']);
    expect((await log.list({ limit: 2 })).map((e) => e.secretName)).toEqual(['S5', 'S4']);
    expect(
      (await log.list({ beforeTsMs: base + (2 * DAY) / 2, limit: 10 })).map((e) => e.secretName),
    ).toEqual(['S1', 'S0']);
    const files = readdirSync(log.dir);
    expect(files.every((f) => /^events-\d{4}-\d{2}-\d{2}\.jsonl$/.test(f))).toBe(true);
    for (const f of files) expect(statSync(`${log.dir}/${f}`).mode & 0o777).toBe(0o600);
  });

  it('copies only known fields (an extra "value" property is dropped)', async () => {
    const log = logFor();
    const ev = { kind: 'secret.create', secretName: 'K', value: 'sk-leak' } as unknown as Parameters<
      AuditLog['append']
    >[0];
    await log.append(ev);
    const text = readFileSync(log.fileFor(Date.now()), 'utf8');
    expect(text).not.toContain('sk-leak');
  });

  it('prunes day files beyond retention, oldest first', async () => {
    const log = logFor({ AIVAULT_AUDIT_RETENTION_DAYS: '3' });
    mkdirSync(log.dir, { recursive: true });
    for (const d of ['2020-01-01', '2020-01-02', '2020-01-03', '2020-01-04'])
      writeFileSync(`${log.dir}/events-${d}.jsonl`, '');
    await log.append({ kind: 'vault.init' });
    const left = readdirSync(log.dir).sort();
    expect(left).toHaveLength(3);
    expect(left).not.toContain('events-2020-01-01.jsonl');
    expect(left).not.toContain('events-2020-01-02.jsonl');
  });

  it('AIVAULT_DISABLE_DISK_LOGS writes nothing and lists nothing', async () => {
    const log = logFor({ AIVAULT_DISABLE_DISK_LOGS: '1' });
    await log.append({ kind: 'vault.init' });
    expect(existsSync(log.dir)).toBe(false);
    expect(await log.list()).toEqual([]);
  });

  it('a failed write is an internal error naming the file', async () => {
    const log = logFor();
    mkdirSync(log.fileFor(Date.now()), { recursive: true }); // a directory where the day file should be
    await expect(log.append({ kind: 'vault.init' })).rejects.toMatchObject({
      code: 'internal',
      message: expect.stringContaining('events-'),
    });
  });
});

describe('AuditLog keepOpen (the daemon pipeline: one open day file)', () => {
  const keepOpen = (recheckMs?: number) => {
    const cfg = configFor(tempDir('aivault-audit-open-'));
    return new AuditLog(cfg, vaultPaths(cfg), {
      keepOpen: true,
      ...(recheckMs !== undefined ? { recheckMs } : {}),
    });
  };
  const lines = (file: string) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { secretName: string }).secretName);

  it('concurrent appends: every line whole, one per event, file 0600', async () => {
    const log = keepOpen();
    onTestFinished(() => log.close());
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => log.append({ kind: 'invoke', secretName: `S${i}` })),
    );
    const got = lines(log.fileFor(Date.now()));
    expect(got.sort()).toEqual(Array.from({ length: 200 }, (_, i) => `S${i}`).sort());
    expect(statSync(log.fileFor(Date.now())).mode & 0o777).toBe(0o600);
  });

  it('reopens on a new UTC day and when the day file is deleted or replaced (rotation)', async () => {
    const log = keepOpen(0); // check the path before every write
    onTestFinished(() => log.close());
    const base = Date.UTC(2026, 0, 10, 23, 59);
    await log.append({ kind: 'invoke', tsMs: base, secretName: 'A' });
    await log.append({ kind: 'invoke', tsMs: base + DAY, secretName: 'B' });
    expect(lines(log.fileFor(base))).toEqual(['A']);
    expect(lines(log.fileFor(base + DAY))).toEqual(['B']);
    rmSync(log.fileFor(base + DAY));
    await log.append({ kind: 'invoke', tsMs: base + DAY, secretName: 'C' });
    expect(lines(log.fileFor(base + DAY))).toEqual(['C']);
    renameSync(log.fileFor(base + DAY), `${log.fileFor(base + DAY)}.1`);
    writeFileSync(log.fileFor(base + DAY), '', { mode: 0o600 });
    await log.append({ kind: 'invoke', tsMs: base + DAY, secretName: 'D' });
    expect(lines(log.fileFor(base + DAY))).toEqual(['D']);
    expect(lines(`${log.fileFor(base + DAY)}.1`)).toEqual(['C']);
  });

  it('warm: no stat per write; a deleted or replaced day file is noticed within recheckMs and re-created', async () => {
    let now = 1_000_000;
    vi.spyOn(performance, 'now').mockImplementation(() => now);
    onTestFinished(() => {
      vi.restoreAllMocks();
    });
    const log = keepOpen(); // default: check at most once a second
    onTestFinished(() => log.close());
    const file = log.fileFor(Date.now());
    await log.append({ kind: 'invoke', secretName: 'A' });
    rmSync(file);
    // Inside the interval the open descriptor is trusted without a stat: B goes to the unlinked inode.
    now += 500;
    await log.append({ kind: 'invoke', secretName: 'B' });
    expect(existsSync(file)).toBe(false);
    now += 600; // interval passed: the path is checked, found gone, and re-created
    await log.append({ kind: 'invoke', secretName: 'C' });
    expect(lines(file)).toEqual(['C']);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    renameSync(file, `${file}.1`); // logrotate: rename + create
    writeFileSync(file, '', { mode: 0o600 });
    now += 1001;
    await log.append({ kind: 'invoke', secretName: 'D' });
    expect(lines(file)).toEqual(['D']);
    expect(lines(`${file}.1`)).toEqual(['C']);
  });

  it('close() releases the descriptor; appends after close still land (open+close per line)', async () => {
    const log = keepOpen();
    onTestFinished(() => log.close());
    await log.append({ kind: 'invoke', secretName: 'A' });
    const fds = () => readdirSync('/proc/self/fd').length;
    const open = fds();
    await log.close();
    expect(fds()).toBe(open - 1);
    await log.append({ kind: 'invoke', secretName: 'B' });
    expect(fds()).toBe(open - 1);
    expect(lines(log.fileFor(Date.now()))).toEqual(['A', 'B']);
  });

  it('a failed write is still an internal error naming the file, and the next append retries', async () => {
    const log = keepOpen();
    onTestFinished(() => log.close());
    const file = log.fileFor(Date.now());
    mkdirSync(file, { recursive: true });
    await expect(log.append({ kind: 'vault.init' })).rejects.toMatchObject({ code: 'internal' });
    rmSync(file, { recursive: true });
    await log.append({ kind: 'invoke', secretName: 'OK' });
    expect(lines(file)).toEqual(['OK']);
  });
});

describe('AuditLog group commit (lines of one event-loop turn in one write)', () => {
  /** Spy on FileHandle#write (the thread-pool write: one-shot appends, and slow storage). */
  async function spyWrites() {
    const fh = await open(tempDir('aivault-audit-fh-') + '/probe', 'w');
    const proto = Object.getPrototypeOf(fh) as { write: (...a: unknown[]) => Promise<unknown> };
    await fh.close();
    const realWrite = proto.write;
    const spy = vi.spyOn(proto, 'write');
    onTestFinished(() => spy.mockRestore());
    return Object.assign(spy, { realWrite });
  }
  /** Count writeSync calls from now on (the kept-open writer's warm writes). */
  function spySyncWrites() {
    writeSyncSpy.mockClear();
    onTestFinished(() => {
      writeSyncSpy.mockImplementation(realWriteSync);
    });
    return writeSyncSpy;
  }
  /** A log that has written one line ('warm': day file open, retention swept), then the write spies. */
  async function warmLog(keepOpen: boolean) {
    const cfg = configFor(tempDir('aivault-audit-gc-'));
    const log = new AuditLog(cfg, vaultPaths(cfg), { keepOpen });
    onTestFinished(() => log.close());
    await log.append({ kind: 'invoke', secretName: 'warm' });
    return { log, writes: await spyWrites(), syncWrites: spySyncWrites() };
  }
  const names = (file: string) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { secretName: string }).secretName);

  for (const keepOpen of [true, false]) {
    it(`N appends of one turn → one write, lines in append order (keepOpen=${keepOpen})`, async () => {
      const { log, writes, syncWrites } = await warmLog(keepOpen);
      const N = 50;
      const done: string[] = [];
      await Promise.all(
        Array.from({ length: N }, (_, i) =>
          log.append({ kind: 'invoke', secretName: `S${i}` }).then(() => done.push(`S${i}`)),
        ),
      );
      // Warm keep-open writes are synchronous (no thread-pool round trip on a call's path).
      expect(writes).toHaveBeenCalledTimes(keepOpen ? 0 : 1);
      expect(syncWrites).toHaveBeenCalledTimes(keepOpen ? 1 : 0);
      expect(done).toHaveLength(N);
      expect(names(log.fileFor(Date.now()))).toEqual([
        'warm',
        ...Array.from({ length: N }, (_, i) => `S${i}`),
      ]);
    });
  }

  it('an append resolves only after the write holding its line has completed', async () => {
    const { log, writes } = await warmLog(false);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    writes.mockImplementationOnce(async function (this: unknown, ...a: unknown[]) {
      await gate;
      return writes.realWrite.apply(this, a);
    });
    let resolved = false;
    const p = log.append({ kind: 'invoke', secretName: 'held' }).then(() => (resolved = true));
    await vi.waitFor(() => expect(writes).toHaveBeenCalledTimes(1));
    await new Promise((r) => setImmediate(r));
    expect(resolved).toBe(false);
    expect(names(log.fileFor(Date.now()))).toEqual(['warm']);
    release();
    await p;
    expect(names(log.fileFor(Date.now()))).toEqual(['warm', 'held']);
  });

  it('a failed batch write rejects every append of the batch; the next batch is written', async () => {
    const { log, syncWrites } = await warmLog(true);
    syncWrites.mockImplementationOnce(() => {
      throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
    });
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, (_, i) => log.append({ kind: 'invoke', secretName: `F${i}` })),
    );
    expect(syncWrites).toHaveBeenCalledTimes(1);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      expect((r as PromiseRejectedResult).reason).toMatchObject({
        code: 'internal',
        details: { errno: 'ENOSPC' },
      });
    }
    await log.append({ kind: 'invoke', secretName: 'after' });
    expect(names(log.fileFor(Date.now()))).toEqual(['warm', 'after']);
  });

  it('a short synchronous write fails its batch as ENOSPC', async () => {
    const { log, syncWrites } = await warmLog(true);
    syncWrites.mockImplementationOnce(() => 3);
    await expect(log.append({ kind: 'invoke', secretName: 'short' })).rejects.toMatchObject({
      details: { errno: 'ENOSPC' },
    });
  });

  it('a slow synchronous write moves the writer to thread-pool writes (slow storage cannot stall the loop)', async () => {
    const { log, writes, syncWrites } = await warmLog(true);
    syncWrites.mockImplementationOnce((...a: Parameters<typeof nodeFs.writeSync>) => {
      const until = performance.now() + 30;
      while (performance.now() < until); // storage that takes 30 ms
      return realWriteSync(...a);
    });
    await log.append({ kind: 'invoke', secretName: 'slow' });
    expect(syncWrites).toHaveBeenCalledTimes(1);
    expect(writes).toHaveBeenCalledTimes(0);
    await log.append({ kind: 'invoke', secretName: 'next' });
    expect(syncWrites).toHaveBeenCalledTimes(1);
    expect(writes).toHaveBeenCalledTimes(1);
    expect(names(log.fileFor(Date.now()))).toEqual(['warm', 'slow', 'next']);
  });

  it('sealed lines written in batches keep the tamper-evidence chain intact', async () => {
    const cfg = configFor(tempDir('aivault-audit-gc-'));
    const key = randomBytes(32);
    const log = new AuditLog(cfg, vaultPaths(cfg), { keepOpen: true, sealKey: async () => key });
    onTestFinished(() => log.close());
    const writes = spySyncWrites();
    for (let round = 0; round < 3; round++) {
      await Promise.all(
        Array.from({ length: 20 }, (_, i) => log.append({ kind: 'invoke', secretName: `R${round}-${i}` })),
      );
    }
    expect(writes.mock.calls.length).toBeLessThanOrEqual(6);
    expect(await log.verify(key)).toEqual({ ok: true, events: 60, files: 1, legacy: 0 });
  });
});

describe('sealed line text', () => {
  it('is exactly the JSON of the event followed by its chain fields and MAC (two writers, a link)', async () => {
    const cfg = configFor(tempDir('aivault-audit-text-'));
    const key = randomBytes(32);
    const first = new AuditLog(cfg, vaultPaths(cfg), { sealKey: async () => key });
    await first.append({ kind: 'invoke', capability: 'openai/chat-completions', path: '/v1/"quoted"\\x' });
    await first.append({ kind: 'invoke', status: 200 });
    const second = new AuditLog(cfg, vaultPaths(cfg), { sealKey: async () => key });
    await second.append({ kind: 'secret.create', secretName: 'S' });
    const lines = readFileSync(first.fileFor(Date.now()), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(3);
    for (const line of lines) {
      const obj = JSON.parse(line) as Record<string, unknown>;
      expect(JSON.stringify(obj)).toBe(line); // well-formed, no duplicate keys, canonical order
      expect(Object.keys(obj).slice(-1)).toEqual(['mac']);
    }
    const [a, b, c] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect([a?.n, b?.n, c?.n]).toEqual([0, 1, 0]);
    expect(b?.p).toBe(a?.mac);
    expect(c?.l).toBe(b?.mac); // the second writer links to the file's last line
    expect(a?.path).toBe('/v1/"quoted"\\x');
    expect(await first.verify(key)).toEqual({ ok: true, events: 3, files: 1, legacy: 0 });
  });
});

describe('utcDay (remembered per day)', () => {
  it('names the UTC day on both sides of midnight, in any order of calls', async () => {
    const { utcDay } = await import('../../../src/stores/audit/audit-event.js');
    const midnight = Date.UTC(2026, 0, 1);
    const cases: [number, string][] = [
      [midnight - 1, '2025-12-31'],
      [midnight, '2026-01-01'],
      [midnight - 1, '2025-12-31'],
      [midnight + DAY - 1, '2026-01-01'],
      [midnight + DAY, '2026-01-02'],
      [0, '1970-01-01'],
      [midnight + 1, '2026-01-01'],
    ];
    for (const [ts, day] of cases) expect(utcDay(ts)).toBe(day);
    for (let i = 0; i < 200; i++) {
      const ts = Math.floor(Math.random() * 4e12);
      expect(utcDay(ts)).toBe(new Date(ts).toISOString().slice(0, 10));
    }
  });
});

// Audit log: ordering, limits, cursors, retention, disabled logs, no unknown fields.
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync, mkdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../../src/audit/index.js';
import { vaultPaths } from '../../../src/vault/index.js';
import { configFor, tempDir } from '../vault/fixtures/helpers.js';

const DAY = 86_400_000;

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

/**
 * The audit log's files (any thread or the CLI): `audit/events-YYYY-MM-DD.jsonl`, one per UTC day — their
 * names, listing them oldest first, deleting those beyond the retention count, the MAC of a day file's
 * last sealed line (where a new writer's chain links in), and creating the audit dir (0700).
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { VaultPaths } from '../vault/paths.js';
import { ensureDir } from '../vault/store.js';
import { unsealLine } from './audit-chain.js';

export const DAY_FILE_RE = /^events-(\d{4}-\d{2}-\d{2})\.jsonl$/;

/** The name of a UTC day's file (`day` = YYYY-MM-DD). */
export function dayFileName(day: string): string {
  return `events-${day}.jsonl`;
}

/** Day file names, oldest first; none when the dir does not exist. */
export async function listDayFiles(dir: string): Promise<string[]> {
  try {
    return (await fsp.readdir(dir)).filter((n) => DAY_FILE_RE.test(n)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** Delete day files beyond the retention count, oldest first. Returns the names removed. */
export async function pruneDayFiles(dir: string, retentionDays: number): Promise<string[]> {
  const files = await listDayFiles(dir);
  const excess = files.slice(0, Math.max(0, files.length - retentionDays));
  for (const name of excess) await fsp.rm(join(dir, name), { force: true });
  return excess;
}

/** MAC of the last complete sealed line of `file` (reads at most its last 64 KiB), if any. */
export async function lastMacOf(file: string): Promise<string | undefined> {
  let fh: fsp.FileHandle | undefined;
  try {
    fh = await fsp.open(file, 'r');
    const { size } = await fh.stat();
    const len = Math.min(size, 64 * 1024);
    const buf = Buffer.alloc(len);
    await fh.read(buf, 0, len, size - len);
    const lines = buf.toString('utf8').split('\n');
    lines.pop(); // '' after the final newline, or a torn tail
    const last = lines.pop();
    return last === undefined ? undefined : unsealLine(last)?.mac;
  } catch {
    return undefined; // no file yet
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/** Ensure the audit dir exists with 0700 (used by vault init). */
export async function ensureAuditDir(paths: VaultPaths): Promise<void> {
  await ensureDir(paths.auditDir);
}

/**
 * Reading the audit log (any thread or the CLI; the dashboard, `aivault audit`): events newest first
 * across day files, and verification of every day file's seals and chains (audit-chain.ts).
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { verifyChain, type DayFileText, type VerifyResult } from './audit-chain.js';
import { sanitizeEvent, utcDay, type AuditEvent, type AuditInput } from './audit-event.js';
import { DAY_FILE_RE, listDayFiles } from './day-files.js';

export interface AuditListOptions {
  readonly limit?: number;
  /** Only events strictly older than this. */
  readonly beforeTsMs?: number;
}

/** Newest first across day files. Unparseable lines (e.g. a torn write after a crash) are skipped. */
export async function listEvents(dir: string, opts: AuditListOptions = {}): Promise<AuditEvent[]> {
  const limit = Math.max(0, Math.trunc(opts.limit ?? 200));
  const before = opts.beforeTsMs;
  const out: AuditEvent[] = [];
  const files = (await listDayFiles(dir)).reverse();
  for (const name of files) {
    if (out.length >= limit) break;
    const m = DAY_FILE_RE.exec(name);
    if (before !== undefined && m?.[1] !== undefined && m[1] > utcDay(before)) continue;
    let text: string;
    try {
      text = await fsp.readFile(join(dir, name), 'utf8');
    } catch {
      continue;
    }
    const events: AuditEvent[] = [];
    for (const line of text.split('\n')) {
      if (line === '') continue;
      try {
        const ev = sanitizeEvent(JSON.parse(line) as AuditInput, 0);
        if (before === undefined || ev.tsMs < before) events.push(ev);
      } catch {
        // skip a torn or hand-edited line
      }
    }
    events.sort((a, b) => b.tsMs - a.tsMs);
    out.push(...events.slice(0, limit - out.length));
  }
  return out;
}

/** Check every day file's seals and chains (see audit-chain.ts) with the audit key. */
export async function verifyDayFiles(dir: string, key: Uint8Array): Promise<VerifyResult> {
  const files: DayFileText[] = [];
  for (const name of await listDayFiles(dir)) {
    const m = DAY_FILE_RE.exec(name);
    files.push({ name, day: m?.[1] ?? '', text: await fsp.readFile(join(dir, name), 'utf8') });
  }
  return verifyChain(key, files);
}

/**
 * Append-only audit log: `audit/events-YYYY-MM-DD.jsonl` (UTC day), files 0600, one `write` per line on
 * an O_APPEND descriptor so concurrent processes never interleave partial lines.
 *
 * The AuditEvent type has no field that can hold a secret value, and `append` copies only the known
 * fields (an object carrying extra properties cannot smuggle one in). `note` is for fixed, non-secret
 * text only.
 *
 * Failure rule: when a line cannot be written (ENOSPC, EIO, EACCES…) `append` throws
 * AivaultError('internal') naming the file and the errno. Callers audit AFTER the change is committed, so
 * the error tells the operator that the change happened but was not recorded; it is never swallowed.
 *
 * Retention: on append, at most once per process per UTC day, day files beyond
 * config.auditRetentionDays are deleted oldest first. AIVAULT_DISABLE_DISK_LOGS → nothing is written and
 * `list` returns [].
 */
import { promises as fsp, constants as fsc } from 'node:fs';
import { join } from 'node:path';
import type { Scope } from '../broker/types.js';
import type { Config } from '../config/env.js';
import { AivaultError } from '../errors.js';
import type { VaultPaths } from '../vault/paths.js';
import { DIR_MODE, FILE_MODE, ensureDir } from '../vault/store.js';

export interface AuditEvent {
  readonly tsMs: number;
  readonly kind: string;
  readonly actor?: string;
  readonly secretId?: string;
  readonly secretName?: string;
  readonly scope?: Scope;
  readonly capability?: string;
  readonly credential?: string;
  readonly provider?: string;
  readonly host?: string;
  readonly method?: string;
  readonly path?: string;
  readonly status?: number;
  readonly durationMs?: number;
  readonly workspaceId?: string;
  readonly groupId?: string;
  readonly clientIp?: string;
  readonly errorCode?: string;
  readonly note?: string;
}

export type AuditInput = Omit<AuditEvent, 'tsMs'> & { readonly tsMs?: number };

const STRING_FIELDS = [
  'kind',
  'actor',
  'secretId',
  'secretName',
  'capability',
  'credential',
  'provider',
  'host',
  'method',
  'path',
  'workspaceId',
  'groupId',
  'clientIp',
  'errorCode',
  'note',
] as const;
const NUMBER_FIELDS = ['status', 'durationMs'] as const;
const MAX_FIELD = 2048;

const DAY_FILE_RE = /^events-(\d{4}-\d{2}-\d{2})\.jsonl$/;
/** auditDir → UTC day of the last retention sweep (once per process per day). */
const prunedOn = new Map<string, string>();

export function utcDay(tsMs: number): string {
  return new Date(tsMs).toISOString().slice(0, 10);
}

/** Copy only the known fields, with sane types and bounded lengths. */
export function sanitizeEvent(input: AuditInput, now = Date.now()): AuditEvent {
  const out: Record<string, unknown> = {
    tsMs: typeof input.tsMs === 'number' ? Math.trunc(input.tsMs) : now,
  };
  const src = input as Record<string, unknown>;
  for (const f of STRING_FIELDS) {
    const v = src[f];
    if (typeof v === 'string') out[f] = v.length > MAX_FIELD ? `${v.slice(0, MAX_FIELD)}…` : v;
  }
  for (const f of NUMBER_FIELDS) {
    const v = src[f];
    if (typeof v === 'number' && Number.isFinite(v)) out[f] = v;
  }
  const s = input.scope;
  if (s && typeof s === 'object' && typeof s.kind === 'string') {
    out.scope = {
      kind: s.kind,
      ...(typeof s.workspaceId === 'string' ? { workspaceId: s.workspaceId } : {}),
      ...(typeof s.groupId === 'string' ? { groupId: s.groupId } : {}),
    };
  }
  return out as unknown as AuditEvent;
}

export interface AuditListOptions {
  readonly limit?: number;
  /** Only events strictly older than this. */
  readonly beforeTsMs?: number;
}

export class AuditLog {
  readonly dir: string;
  readonly #disabled: boolean;
  readonly #retentionDays: number;
  #dirReady = false;

  constructor(config: Config, paths: VaultPaths) {
    this.dir = paths.auditDir;
    this.#disabled = config.disableDiskLogs;
    this.#retentionDays = config.auditRetentionDays;
  }

  get enabled(): boolean {
    return !this.#disabled;
  }

  fileFor(tsMs: number): string {
    return join(this.dir, `events-${utcDay(tsMs)}.jsonl`);
  }

  async append(input: AuditInput): Promise<AuditEvent | undefined> {
    if (this.#disabled) return undefined;
    const event = sanitizeEvent(input);
    const file = this.fileFor(event.tsMs);
    const line = Buffer.from(`${JSON.stringify(event)}\n`, 'utf8');
    try {
      // mkdir once per AuditLog, again only if the directory vanished: a recursive mkdir of an existing
      // dir cost ~12% of a request worker's busy time under load (bench/PROFILE.md).
      if (!this.#dirReady) await fsp.mkdir(this.dir, { recursive: true, mode: DIR_MODE });
      const flags = fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT;
      const fh = await fsp.open(file, flags, FILE_MODE).catch(async (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
        await fsp.mkdir(this.dir, { recursive: true, mode: DIR_MODE });
        return fsp.open(file, flags, FILE_MODE);
      });
      this.#dirReady = true;
      try {
        const { bytesWritten } = await fh.write(line, 0, line.length);
        if (bytesWritten !== line.length) {
          throw Object.assign(new Error('short write'), { code: 'ENOSPC' });
        }
      } finally {
        await fh.close();
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new AivaultError(
        'internal',
        `audit log write to ${file} failed (${code}); the event was not recorded`,
        {
          file,
          errno: code,
        },
      );
    }
    await this.#maybePrune(event.tsMs);
    return event;
  }

  async #dayFiles(): Promise<string[]> {
    try {
      return (await fsp.readdir(this.dir)).filter((n) => DAY_FILE_RE.test(n)).sort();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  async #maybePrune(tsMs: number): Promise<void> {
    const day = utcDay(tsMs);
    if (prunedOn.get(this.dir) === day) return;
    prunedOn.set(this.dir, day);
    await this.prune();
  }

  /** Delete day files beyond the retention count, oldest first. Returns the names removed. */
  async prune(): Promise<string[]> {
    if (this.#disabled) return [];
    const files = await this.#dayFiles();
    const excess = files.slice(0, Math.max(0, files.length - this.#retentionDays));
    for (const name of excess) await fsp.rm(join(this.dir, name), { force: true });
    return excess;
  }

  /** Newest first across day files. Unparseable lines (e.g. a torn write after a crash) are skipped. */
  async list(opts: AuditListOptions = {}): Promise<AuditEvent[]> {
    if (this.#disabled) return [];
    const limit = Math.max(0, Math.trunc(opts.limit ?? 200));
    const before = opts.beforeTsMs;
    const out: AuditEvent[] = [];
    const files = (await this.#dayFiles()).reverse();
    for (const name of files) {
      if (out.length >= limit) break;
      const m = DAY_FILE_RE.exec(name);
      if (before !== undefined && m?.[1] !== undefined && m[1] > utcDay(before)) continue;
      let text: string;
      try {
        text = await fsp.readFile(join(this.dir, name), 'utf8');
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
}

/** Ensure the audit dir exists with 0700 (used by vault init). */
export async function ensureAuditDir(paths: VaultPaths): Promise<void> {
  await ensureDir(paths.auditDir);
}

/**
 * Append-only audit log: `audit/events-YYYY-MM-DD.jsonl` (UTC day), files 0600, whole lines written on
 * an O_APPEND descriptor so concurrent processes never interleave partial lines.
 *
 * Group commit: lines appended during one event-loop turn are written together, in append order, in ONE
 * `write` (flushed from a setImmediate, i.e. right after the turn's I/O callbacks; lines that arrive while
 * that write is in flight form the next batch). Why: one thread-pool write per line was ~28% of a request
 * worker's CPU (issue 12); under load one write now carries many calls' lines. `append` still resolves only
 * after the write holding its line has completed, so no call is acknowledged without its audit line, and a
 * failed write rejects every append in that batch. Runs on whichever thread owns the AuditLog (request
 * workers, the daemon's operator executor, the in-process CLI).
 *
 * The AuditEvent type has no field that can hold a secret value, and `append` copies only the known
 * fields (an object carrying extra properties cannot smuggle one in). `note` is for fixed, non-secret
 * text only.
 *
 * Failure rule: when a line cannot be written (ENOSPC, EIO, EACCES…) `append` throws
 * AivaultError('internal') naming the file and the errno. Callers audit AFTER the change is committed, so
 * the error tells the operator that the change happened but was not recorded; it is never swallowed.
 *
 * Open descriptor (`keepOpen`, used by the daemon's request workers and in-process pipeline): the day
 * file stays open between appends instead of open+write+close per line (that was ~24% of a request
 * worker's busy time, bench/PROFILE.md). Same guarantees: whole lines in one `write` on an O_APPEND
 * descriptor; the line is on its way to the kernel before `append` resolves (same durability as before:
 * written, not fsync'd). A new UTC day is noticed in memory (the day file's name comes from the event's
 * timestamp) and rolls to the new file at once. A deleted file (retention, an operator's rm) or a replaced
 * one (logrotate's rename + create) is noticed by a `stat` of the path at most once per `recheckMs`
 * (default 1 s, monotonic clock) and reopens the path: a `stat` before every write was one `statx` per
 * request on the warm path (issue 12); lines written in the ≤ 1 s between a hand deletion and the next
 * check go to the unlinked inode, the same as any writer that keeps its log open (logrotate's
 * copytruncate mode loses nothing). `close()` must be called when the owner shuts down; closing waits for
 * writes in flight (FileHandle semantics), so a descriptor number is never reused under a write.
 *
 * Retention: on append, at most once per process per UTC day, day files beyond
 * config.auditRetentionDays are deleted oldest first. AIVAULT_DISABLE_DISK_LOGS → nothing is written and
 * `list` returns [].
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp, constants as fsc, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Scope } from '../../core/broker/types.js';
import type { Config } from '../../core/config/env.js';
import { AivaultError } from '../../core/errors.js';
import type { VaultPaths } from '../vault/paths.js';
import { DIR_MODE, FILE_MODE, ensureDir } from '../vault/store.js';
import {
  keyIdOf,
  sealLine,
  unsealLine,
  verifyChain,
  type DayFileText,
  type VerifyResult,
} from './audit-chain.js';

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
  /** response.scrubbed: how many reflected secret values were replaced. */
  readonly count?: number;
  /** response.scrubbed: comma-separated encoding kinds found (raw, base64, hex…), never a value. */
  readonly encodings?: string;
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
  'encodings',
] as const;
const NUMBER_FIELDS = ['status', 'durationMs', 'count'] as const;
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

export interface AuditLogOptions {
  /** Keep the day file open between appends (call `close()` on shutdown). */
  readonly keepOpen?: boolean;
  /**
   * The audit sealing key (KEK subkey) or undefined when unavailable (locked vault): lines are then
   * written unsealed, and `audit verify` reports them. Asked once; a miss is retried after 5 s.
   */
  readonly sealKey?: () => Promise<Uint8Array | undefined>;
  /**
   * keepOpen: how often (ms, monotonic) the open day file's path is checked for deletion or replacement.
   * 0 checks before every write. Default 1000.
   */
  readonly recheckMs?: number;
}

const DEFAULT_RECHECK_MS = 1000;

/** How long a failed sealKey() answer is reused before asking again (a locked vault, a crypto restart). */
const SEAL_KEY_RETRY_MS = 5000;

interface QueuedLine {
  readonly file: string;
  readonly line: Buffer;
  resolve(): void;
  reject(err: unknown): void;
}

interface OpenDayFile {
  readonly file: string;
  readonly fh: fsp.FileHandle;
  readonly dev: number;
  readonly ino: number;
}

const APPEND_FLAGS = fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT;

export class AuditLog {
  readonly dir: string;
  readonly #disabled: boolean;
  readonly #retentionDays: number;
  readonly #keepOpen: boolean;
  readonly #recheckMs: number;
  /** performance.now() of the last check that the open day file is still what its path names. */
  #checkedAt = 0;
  #dirReady = false;
  /** keepOpen: the open day file, and an open in progress (one at a time). */
  #open: OpenDayFile | undefined;
  #opening: { readonly file: string; readonly p: Promise<OpenDayFile> } | undefined;
  #closed = false;
  /** Chain state of this writer (see audit-chain.ts). */
  readonly #writer = randomBytes(8).toString('hex');
  #seq = 0;
  #prevMac: string | undefined;
  #prevDay: string | undefined;
  readonly #sealKey: (() => Promise<Uint8Array | undefined>) | undefined;
  #key: Promise<Uint8Array | undefined> | undefined;
  #keyMissAt = 0;
  /** Group commit: lines of one event-loop turn (or queued while a write is in flight) go out together. */
  #queue: QueuedLine[] = [];
  /** A flush is scheduled or running: new lines only join the queue. */
  #flushing = false;

  constructor(config: Config, paths: VaultPaths, opts: AuditLogOptions = {}) {
    this.dir = paths.auditDir;
    this.#disabled = config.disableDiskLogs;
    this.#retentionDays = config.auditRetentionDays;
    this.#keepOpen = opts.keepOpen === true;
    this.#recheckMs = Math.max(0, opts.recheckMs ?? DEFAULT_RECHECK_MS);
    this.#sealKey = opts.sealKey;
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
    let file = this.fileFor(event.tsMs);
    try {
      const key = await this.#loadKey();
      let text = JSON.stringify(event);
      if (key) {
        // Lines are numbered and queued in the same order (no await between the two after sealing).
        const sealed = await this.#seal(key, event);
        text = sealed.line;
        file = sealed.file;
      }
      await this.#enqueue(file, Buffer.from(`${text}\n`, 'utf8'));
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

  #loadKey(): Promise<Uint8Array | undefined> {
    if (!this.#sealKey) return Promise.resolve(undefined);
    if (this.#key && !(this.#keyMissAt > 0 && Date.now() - this.#keyMissAt > SEAL_KEY_RETRY_MS)) {
      return this.#key;
    }
    this.#keyMissAt = 0;
    const p = this.#sealKey().then(
      (k) => {
        if (!k) this.#keyMissAt = Date.now();
        return k;
      },
      () => {
        this.#keyMissAt = Date.now();
        return undefined;
      },
    );
    this.#key = p;
    return p;
  }

  #kid: { readonly key: Uint8Array; readonly id: string } | undefined;

  /** The sealing key's public id, computed once per key (an HMAC per line otherwise). */
  #keyId(key: Uint8Array): string {
    if (this.#kid?.key !== key) this.#kid = { key, id: keyIdOf(key) };
    return this.#kid.id;
  }

  /** Number, chain and seal one event. The first sealed line links to the day file's last line. */
  async #seal(key: Uint8Array, event: AuditEvent): Promise<{ line: string; file: string }> {
    let link: string | undefined;
    if (this.#prevMac === undefined && this.#seq === 0) {
      this.#seq = -1; // reserve n = 0 for this call while the link is read
      link = await lastMacOf(this.fileFor(event.tsMs));
      this.#seq = 0;
    }
    while (this.#seq < 0) await new Promise((r) => setImmediate(r)); // another first line is being sealed
    // A writer's chain only moves forward through day files (an event stamped before midnight but sealed
    // after one stamped after it goes to the later file), so the verifier reads each chain in order.
    let day = utcDay(event.tsMs);
    if (this.#prevDay !== undefined && day < this.#prevDay) day = this.#prevDay;
    const chain = {
      k: this.#keyId(key),
      w: this.#writer,
      n: this.#seq,
      ...(this.#prevMac !== undefined ? { p: this.#prevMac } : {}),
      ...(this.#prevDay !== undefined ? { pd: this.#prevDay } : {}),
      ...(link !== undefined ? { l: link } : {}),
    };
    const { line, mac } = sealLine(key, JSON.stringify({ ...event, ...chain }));
    this.#seq++;
    this.#prevMac = mac;
    this.#prevDay = day;
    return { line, file: join(this.dir, `events-${day}.jsonl`) };
  }

  #enqueue(file: string, line: Buffer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ file, line, resolve, reject });
      if (this.#flushing) return;
      // Not queueMicrotask: the lines of one turn come from several I/O callbacks, and microtasks run
      // between callbacks; setImmediate runs once the poll phase has delivered them all.
      this.#flushing = true;
      setImmediate(() => void this.#flush());
    });
  }

  /** Write queued lines in order, one write per run of lines for the same day file. */
  async #flush(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0);
        for (let i = 0; i < batch.length;) {
          const file = (batch[i] as QueuedLine).file;
          let j = i;
          while (j < batch.length && (batch[j] as QueuedLine).file === file) j++;
          const run = batch.slice(i, j);
          const bytes =
            run.length === 1 ? (run[0] as QueuedLine).line : Buffer.concat(run.map((q) => q.line));
          try {
            if (this.#keepOpen && !this.#closed) await this.#appendOpen(file, bytes);
            else await this.#appendOnce(file, bytes);
            for (const q of run) q.resolve();
          } catch (err) {
            for (const q of run) q.reject(err);
          }
          i = j;
        }
      }
    } finally {
      this.#flushing = false;
    }
  }

  /** Check every day file's seals and chains (see audit-chain.ts) with the audit key. */
  async verify(key: Uint8Array): Promise<VerifyResult> {
    const files: DayFileText[] = [];
    for (const name of await this.#dayFiles()) {
      const m = DAY_FILE_RE.exec(name);
      files.push({ name, day: m?.[1] ?? '', text: await fsp.readFile(join(this.dir, name), 'utf8') });
    }
    return verifyChain(key, files);
  }

  /** Close the kept-open day file (waits for writes in flight). Later appends open+close per line. */
  async close(): Promise<void> {
    this.#closed = true;
    const opening = this.#opening?.p;
    const cur = this.#open;
    this.#open = undefined;
    await Promise.all([cur?.fh.close().catch(() => undefined), opening?.catch(() => undefined)]);
  }

  async #openFile(file: string): Promise<fsp.FileHandle> {
    // mkdir once per AuditLog, again only if the directory vanished: a recursive mkdir of an existing
    // dir cost ~12% of a request worker's busy time under load (bench/PROFILE.md).
    if (!this.#dirReady) await fsp.mkdir(this.dir, { recursive: true, mode: DIR_MODE });
    const fh = await fsp.open(file, APPEND_FLAGS, FILE_MODE).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      await fsp.mkdir(this.dir, { recursive: true, mode: DIR_MODE });
      return fsp.open(file, APPEND_FLAGS, FILE_MODE);
    });
    this.#dirReady = true;
    return fh;
  }

  static async #writeLine(fh: fsp.FileHandle, line: Buffer): Promise<void> {
    const { bytesWritten } = await fh.write(line, 0, line.length);
    if (bytesWritten !== line.length) {
      throw Object.assign(new Error('short write'), { code: 'ENOSPC' });
    }
  }

  async #appendOnce(file: string, line: Buffer): Promise<void> {
    const fh = await this.#openFile(file);
    try {
      await AuditLog.#writeLine(fh, line);
    } finally {
      await fh.close();
    }
  }

  /**
   * The open day file if it is still what `file` names, else undefined. Same day: compared in memory.
   * Same inode: checked with a sync `stat` (~1 µs) only when `recheckMs` has passed since the last check,
   * so a warm writer makes no filesystem call besides its batched `write`.
   */
  #current(file: string): OpenDayFile | undefined {
    const cur = this.#open;
    if (!cur || cur.file !== file) return undefined;
    const now = performance.now();
    if (now - this.#checkedAt < this.#recheckMs) return cur;
    try {
      const st = statSync(file, { throwIfNoEntry: false });
      if (st && st.ino === cur.ino && st.dev === cur.dev) {
        this.#checkedAt = now;
        return cur;
      }
    } catch {
      // unreadable path: reopen, which reports the real error
    }
    return undefined;
  }

  /** Open `file` as the day file (shared by concurrent appends) and release the previous one. */
  #reopen(file: string): Promise<OpenDayFile> {
    if (this.#opening?.file === file) return this.#opening.p;
    const p = (async (): Promise<OpenDayFile> => {
      const fh = await this.#openFile(file);
      let next: OpenDayFile;
      try {
        const st = await fh.stat();
        next = { file, fh, dev: st.dev, ino: st.ino };
      } catch (err) {
        await fh.close().catch(() => undefined);
        throw err;
      }
      if (this.#closed) {
        await fh.close().catch(() => undefined);
        throw Object.assign(new Error('audit log closed'), { code: 'EBADF' });
      }
      const old = this.#open;
      this.#open = next;
      this.#checkedAt = performance.now(); // just opened by path: it is what the path names
      // FileHandle.close waits for that handle's writes in flight before the descriptor is released.
      if (old) void old.fh.close().catch(() => undefined);
      return next;
    })();
    const entry = { file, p };
    this.#opening = entry;
    void p
      .finally(() => {
        if (this.#opening === entry) this.#opening = undefined;
      })
      .catch(() => undefined);
    return p;
  }

  async #appendOpen(file: string, line: Buffer): Promise<void> {
    // The write is issued in the same tick as the check (no await between): a concurrent reopen or
    // close() cannot release this handle before the write is pending on it.
    let fd = this.#current(file);
    try {
      fd ??= await this.#reopen(file);
      await AuditLog.#writeLine(fd.fh, line);
    } catch (err) {
      if (this.#closed) return this.#appendOnce(file, line); // raced with shutdown: one-shot write
      if (fd && this.#open === fd) {
        this.#open = undefined; // reopen next time (e.g. after ENOSPC or EIO)
        void fd.fh.close().catch(() => undefined);
      }
      throw err;
    }
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

/** MAC of the last complete sealed line of `file` (reads at most its last 64 KiB), if any. */
async function lastMacOf(file: string): Promise<string | undefined> {
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

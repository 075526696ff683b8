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
 * fields (audit-event.ts). Lines are sealed and chained per writer when the audit key is available
 * (audit-chain.ts). Reading and verifying: audit-reader.ts; the day files and retention: day-files.ts.
 *
 * Failure rule: when a line cannot be written (ENOSPC, EIO, EACCES…) `append` throws
 * AivaultError('internal') naming the file and the errno. Callers audit AFTER the change is committed, so
 * the error tells the operator that the change happened but was not recorded; it is never swallowed.
 *
 * Open descriptor (`keepOpen`): the day file stays open between appends (day-file-writer.ts, with how a
 * deleted or rotated file is noticed). `close()` must be called when the owner shuts down.
 *
 * Retention: on append, at most once per process per UTC day, day files beyond
 * config.auditRetentionDays are deleted oldest first. AIVAULT_DISABLE_DISK_LOGS → nothing is written and
 * `list` returns [].
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Config } from '../../core/config/env.js';
import { AivaultError } from '../../core/errors.js';
import type { VaultPaths } from '../vault/paths.js';
import { keyIdOf, sealLine, type VerifyResult } from './audit-chain.js';
import { sanitizeEvent, utcDay, type AuditEvent, type AuditInput } from './audit-event.js';
import { listEvents, verifyDayFiles, type AuditListOptions } from './audit-reader.js';
import { dayFileName, lastMacOf, pruneDayFiles } from './day-files.js';
import { DayFileWriter } from './day-file-writer.js';

// The audit log's public surface stays importable from here (many modules import it from this file).
export { sanitizeEvent, utcDay, type AuditEvent, type AuditInput } from './audit-event.js';
export type { AuditListOptions } from './audit-reader.js';
export { ensureAuditDir } from './day-files.js';

/** auditDir → UTC day of the last retention sweep (once per process per day). */
const prunedOn = new Map<string, string>();

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

export class AuditLog {
  readonly dir: string;
  readonly #disabled: boolean;
  readonly #retentionDays: number;
  /** Writes batches of whole lines to the day files (kept open or not). */
  readonly #files: DayFileWriter;
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
    this.#files = new DayFileWriter(
      this.dir,
      opts.keepOpen === true,
      Math.max(0, opts.recheckMs ?? DEFAULT_RECHECK_MS),
    );
    this.#sealKey = opts.sealKey;
  }

  get enabled(): boolean {
    return !this.#disabled;
  }

  /** The last day's file path: one join per UTC day instead of one per line. */
  #dayPath: { readonly day: string; readonly file: string } | undefined;

  fileFor(tsMs: number): string {
    return this.#fileOfDay(utcDay(tsMs));
  }

  #fileOfDay(day: string): string {
    if (this.#dayPath?.day !== day) this.#dayPath = { day, file: join(this.dir, dayFileName(day)) };
    return this.#dayPath.file;
  }

  async append(input: AuditInput): Promise<AuditEvent | undefined> {
    if (this.#disabled) return undefined;
    const event = sanitizeEvent(input);
    let file = this.fileFor(event.tsMs);
    try {
      const key = await this.#loadKey();
      let text: string;
      if (key) {
        // Lines are numbered and queued in the same order (no await between the two after sealing).
        const sealed = await this.#seal(key, event);
        text = sealed.line;
        file = sealed.file;
      } else {
        text = JSON.stringify(event);
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
    // The chain fields are appended as text: the same bytes as JSON.stringify({...event, ...chain}) without
    // a merged object and a second serialization per line. k is base64url, w hex, p a base64url MAC, pd a
    // YYYY-MM-DD day (all made here, nothing to escape); l was read from a file, so it is quoted by JSON.
    const json = JSON.stringify(event);
    const chain =
      `,"k":"${this.#keyId(key)}","w":"${this.#writer}","n":${this.#seq}` +
      (this.#prevMac !== undefined ? `,"p":"${this.#prevMac}"` : '') +
      (this.#prevDay !== undefined ? `,"pd":"${this.#prevDay}"` : '') +
      (link !== undefined ? `,"l":${JSON.stringify(link)}` : '');
    const { line, mac } = sealLine(key, `${json.slice(0, -1)}${chain}}`);
    this.#seq++;
    this.#prevMac = mac;
    this.#prevDay = day;
    return { line, file: this.#fileOfDay(day) };
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
            await this.#files.write(file, bytes);
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
  verify(key: Uint8Array): Promise<VerifyResult> {
    return verifyDayFiles(this.dir, key);
  }

  /** Close the kept-open day file (waits for writes in flight). Later appends open+close per line. */
  close(): Promise<void> {
    return this.#files.close();
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
    return pruneDayFiles(this.dir, this.#retentionDays);
  }

  /** Newest first across day files. Unparseable lines (e.g. a torn write after a crash) are skipped. */
  async list(opts: AuditListOptions = {}): Promise<AuditEvent[]> {
    if (this.#disabled) return [];
    return listEvents(this.dir, opts);
  }
}

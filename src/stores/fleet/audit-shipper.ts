/**
 * Central audit sink: copies every event of this vault's local audit log to the fleet's PostgreSQL table
 * (audit-store.ts), in order, exactly once. Runs on aivaultd's main thread, off the call path: request
 * workers write their audit lines locally as before (src/stores/audit/audit-log.ts) and never wait for the
 * database; this tails the day files afterwards.
 *
 * Why tail the local log instead of a second in-memory queue: a line is in the day file before its call
 * is answered (audit-log.ts), so the local log already IS a durable, ordered spool. The shipper keeps a
 * cursor (day file → inode + byte offset of the first line not yet in PostgreSQL) in
 * `<audit dir>/.fleet-cursor.json`, written (tmp + rename) only after the batch's INSERT has committed.
 * - PostgreSQL down: nothing advances; the shipper retries with a capped backoff and, once the database
 *   is back, replays from the cursor in file and line order.
 * - Exactly once: each event's id is a hash of (host, vault, day file, byte offset, line), the same on
 *   every replay, and the table ignores ids it already has. A crash after COMMIT but before the cursor
 *   write re-sends the batch; nothing is duplicated.
 * - Bounded: the spool is the audit log itself, bounded by AIVAULT_AUDIT_RETENTION_DAYS. A day file deleted
 *   (retention, an operator) before it was shipped is reported on stderr with the bytes lost.
 * Only complete lines are shipped (a line being written has no newline yet). A file replaced under its
 * name (new inode: logrotate) is shipped from its start.
 */
import { createHash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { sanitizeEvent, type AuditInput } from '../audit/audit-log.js';
import { redactUrl } from './config.js';
import { AuditStore, type FleetAuditRow } from './audit-store.js';

export const CURSOR_FILE = '.fleet-cursor.json';
const DAY_FILE_RE = /^events-\d{4}-\d{2}-\d{2}\.jsonl$/;
/** Events per INSERT. */
const BATCH = 500;
/** Bytes read from a day file per step (only whole lines of it are used). */
const READ_CHUNK = 1 << 20;
const MAX_BACKOFF_MS = 2000;

interface FileCursor {
  ino: number;
  offset: number;
  /** Size last seen (to report what retention deleted unshipped). */
  size: number;
}

export interface AuditShipperOptions {
  readonly auditDir: string;
  readonly url: string;
  readonly fleetId: string;
  readonly node: string;
  /** Distinguishes two vaults on one host in event ids (default: the audit dir). */
  readonly vaultTag?: string;
  /** Where the cursor is kept (default `<auditDir>/.fleet-cursor.json`). */
  readonly cursorFile?: string;
  /** How often the day files are checked for new lines (ms). */
  readonly pollMs?: number;
  readonly warn?: (line: string) => void;
}

export interface ShipperStats {
  /** Events inserted (new rows) since start. */
  shipped: number;
  /** Events sent again and skipped by the table (replays). */
  duplicates: number;
  /** The last attempt failed (database unreachable or refusing). */
  failing: boolean;
}

export class AuditShipper {
  private readonly store: AuditStore;
  private readonly cursorPath: string;
  private readonly where: string;
  private cursor = new Map<string, FileCursor>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private backoffMs = 0;
  readonly stats: ShipperStats = { shipped: 0, duplicates: 0, failing: false };

  constructor(private readonly opts: AuditShipperOptions) {
    this.store = new AuditStore({ url: opts.url });
    this.cursorPath = opts.cursorFile ?? join(opts.auditDir, CURSOR_FILE);
    this.where = redactUrl(opts.url);
  }

  private warn(line: string): void {
    (this.opts.warn ?? ((l: string) => process.stderr.write(`${l}\n`)))(`aivaultd: ${line}`);
  }

  async start(): Promise<void> {
    this.cursor = await this.loadCursor();
    this.schedule(0);
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
        this.schedule(this.backoffMs || (this.opts.pollMs ?? 250));
      });
    }, ms);
    this.timer.unref();
  }

  /** Ship everything written so far (tests, shutdown); resolves when caught up or on the first failure. */
  async drain(): Promise<boolean> {
    while (this.running) await this.running;
    return this.shipAll();
  }

  /** Stop polling; one last attempt ships what the local log holds (bounded by `deadlineMs`). */
  async stop(deadlineMs = 2000): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    const last = (async () => {
      while (this.running) await this.running;
      await this.shipAll();
    })();
    await Promise.race([last, new Promise((r) => setTimeout(r, deadlineMs).unref())]);
    await this.store.close();
  }

  private async tick(): Promise<void> {
    let ok = false;
    try {
      ok = await this.shipAll();
    } catch (err) {
      // The cursor could not be written (disk full…): retry later; ids keep a re-send harmless.
      this.warn(`fleet audit: ${(err as NodeJS.ErrnoException).code ?? 'error'} while shipping; retrying`);
    }
    this.backoffMs = ok ? 0 : Math.min(MAX_BACKOFF_MS, Math.max(100, this.backoffMs * 2));
  }

  /** Ship every complete line past the cursor, oldest file first. False when the database failed. */
  private async shipAll(): Promise<boolean> {
    let names: string[];
    try {
      names = (await fsp.readdir(this.opts.auditDir)).filter((n) => DAY_FILE_RE.test(n)).sort();
    } catch {
      return true; // no audit dir yet
    }
    this.forgetDeleted(new Set(names));
    for (const name of names) {
      for (;;) {
        const step = await this.shipStep(name);
        if (step === 'failed') return false;
        if (step === 'done') break;
      }
    }
    return true;
  }

  private forgetDeleted(present: ReadonlySet<string>): void {
    for (const [name, c] of this.cursor) {
      if (present.has(name)) continue;
      this.cursor.delete(name);
      if (c.size > c.offset) {
        this.warn(
          `fleet audit: ${name} was deleted before ${c.size - c.offset} bytes of it reached PostgreSQL (retention?)`,
        );
      }
    }
  }

  /** One batch from one file: 'more' (call again), 'done' (caught up) or 'failed'. */
  private async shipStep(name: string): Promise<'more' | 'done' | 'failed'> {
    const file = join(this.opts.auditDir, name);
    let fh: fsp.FileHandle;
    try {
      fh = await fsp.open(file, 'r');
    } catch {
      return 'done'; // deleted meanwhile
    }
    let rows: FleetAuditRow[] = [];
    let next: FileCursor;
    let seen: FileCursor;
    try {
      const st = await fh.stat();
      const prev = this.cursor.get(name);
      const start = prev && prev.ino === st.ino && prev.offset <= st.size ? prev.offset : 0;
      next = { ino: st.ino, offset: start, size: st.size };
      seen = { ...next };
      if (st.size <= start) {
        this.cursor.set(name, next);
        return 'done';
      }
      const len = Math.min(READ_CHUNK, st.size - start);
      const buf = Buffer.alloc(len);
      const { bytesRead } = await fh.read(buf, 0, len, start);
      let at = 0;
      while (rows.length < BATCH) {
        const nl = buf.indexOf(0x0a, at);
        if (nl < 0 || nl >= bytesRead) break;
        const line = buf.subarray(at, nl);
        const row = this.rowOf(name, start + at, line);
        if (row) rows.push(row);
        at = nl + 1;
      }
      next.offset = start + at;
      if (at === 0) {
        // A partial line only (being written, or a torn tail): wait for its newline (size noted, so a
        // deletion before it is shipped is reported).
        this.cursor.set(name, next);
        return 'done';
      }
    } finally {
      await fh.close().catch(() => undefined);
    }
    try {
      const added = await this.store.insert(this.opts.fleetId, this.opts.node, rows);
      this.stats.shipped += added;
      this.stats.duplicates += rows.length - added;
    } catch (err) {
      if (!this.stats.failing) {
        const why = (err as { code?: string }).code ?? (err as Error).message;
        this.warn(
          `fleet audit: PostgreSQL at ${this.where} unavailable (${why}); events stay in the local audit log and are sent when it is back`,
        );
      }
      this.stats.failing = true;
      this.cursor.set(name, seen); // same position, size noted (a deletion meanwhile is reported)
      return 'failed';
    }
    if (this.stats.failing) {
      this.stats.failing = false;
      this.warn(`fleet audit: PostgreSQL at ${this.where} is back; replaying the local audit log`);
    }
    rows = [];
    this.cursor.set(name, next);
    await this.saveCursor();
    return next.offset < next.size ? 'more' : 'done';
  }

  /** The row for one line, or undefined for a line that is not an event (torn, hand-edited). */
  private rowOf(name: string, offset: number, line: Buffer): FleetAuditRow | undefined {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line.toString('utf8'));
    } catch {
      return undefined;
    }
    if (!parsed || typeof parsed !== 'object' || typeof (parsed as AuditInput).kind !== 'string') {
      return undefined;
    }
    const event = sanitizeEvent(parsed as AuditInput, 0);
    const eventId = createHash('sha256')
      .update(`${this.opts.node}\0${this.opts.vaultTag ?? this.opts.auditDir}\0${name}\0${offset}\0`)
      .update(line)
      .digest('base64url')
      .slice(0, 32);
    return { eventId, event };
  }

  private async loadCursor(): Promise<Map<string, FileCursor>> {
    try {
      const raw = JSON.parse(await fsp.readFile(this.cursorPath, 'utf8')) as {
        files?: Record<string, FileCursor>;
      };
      const out = new Map<string, FileCursor>();
      for (const [name, c] of Object.entries(raw.files ?? {})) {
        if (DAY_FILE_RE.test(name) && Number.isInteger(c.offset) && Number.isInteger(c.ino)) {
          out.set(name, { ino: c.ino, offset: c.offset, size: Number(c.size) || c.offset });
        }
      }
      return out;
    } catch {
      return new Map(); // first run (or an unreadable cursor): ship from the start, ids dedupe
    }
  }

  private async saveCursor(): Promise<void> {
    const tmp = `${this.cursorPath}.${randomBytes(6).toString('hex')}.tmp`;
    const files = Object.fromEntries(this.cursor);
    await fsp.writeFile(tmp, `${JSON.stringify({ v: 1, files })}\n`, { mode: 0o600 });
    await fsp.rename(tmp, this.cursorPath);
  }
}

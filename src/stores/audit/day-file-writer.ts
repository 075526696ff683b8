/**
 * Writing whole lines to an audit day file (whichever thread owns the AuditLog: request workers, the
 * daemon's main thread, the in-process CLI): one `write` per batch on an O_APPEND descriptor, so
 * concurrent processes never interleave partial lines; a short write is ENOSPC.
 *
 * Open descriptor (`keepOpen`, used by the daemon's request workers and in-process pipeline): the day
 * file stays open between appends instead of open+write+close per line (that was ~24% of a request
 * worker's busy time, bench/PROFILE.md); the line is on its way to the kernel before the write resolves
 * (written, not fsync'd, as without it). A new UTC day is a new file name and rolls at once. A deleted
 * file (retention, an operator's rm) or a replaced one (logrotate's rename + create) is noticed by a
 * `stat` of the path at most once per `recheckMs` (monotonic clock) and reopens the path: a `stat` before
 * every write was one `statx` per request on the warm path (issue 12); lines written in the ≤ 1 s between
 * a hand deletion and the next check go to the unlinked inode, the same as any writer that keeps its log
 * open (logrotate's copytruncate mode loses nothing). `close()` waits for writes in flight (FileHandle
 * semantics), so a descriptor number is never reused under a write; after it, each write opens and
 * closes the file.
 *
 * Warm writes are synchronous (`writeSync` on the open descriptor): an O_APPEND write of a batch of lines to
 * a local file is a page-cache copy of ~10 µs, while a FileHandle write is a libuv thread-pool round trip —
 * two thread wake-ups on the path of every call, since a call is answered only after its line is written
 * (issue 12: added latency at c=1). A sync write that takes longer than SLOW_SYNC_MS (slow or network
 * storage) switches this writer to thread-pool writes for good, so a slow disk cannot stall the event loop
 * more than once.
 */
import { promises as fsp, constants as fsc, statSync, writeSync } from 'node:fs';
import { DIR_MODE, FILE_MODE } from '../vault/store.js';

interface OpenDayFile {
  readonly file: string;
  readonly fh: fsp.FileHandle;
  readonly dev: number;
  readonly ino: number;
}

const APPEND_FLAGS = fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT;

/** A warm sync write slower than this (ms) moves the writer to thread-pool writes. */
const SLOW_SYNC_MS = 20;

export class DayFileWriter {
  readonly #dir: string;
  readonly #keepOpen: boolean;
  readonly #recheckMs: number;
  /** performance.now() of the last check that the open day file is still what its path names. */
  #checkedAt = 0;
  #dirReady = false;
  /** keepOpen: the open day file, and an open in progress (one at a time). */
  #open: OpenDayFile | undefined;
  #opening: { readonly file: string; readonly p: Promise<OpenDayFile> } | undefined;
  #closed = false;
  /** Warm writes go out with writeSync until one of them is slow (see the header). */
  #syncWrites = true;

  constructor(dir: string, keepOpen: boolean, recheckMs: number) {
    this.#dir = dir;
    this.#keepOpen = keepOpen;
    this.#recheckMs = recheckMs;
  }

  /** Append `bytes` (whole lines) to `file` in one write. */
  write(file: string, bytes: Buffer): Promise<void> {
    return this.#keepOpen && !this.#closed ? this.#appendOpen(file, bytes) : this.#appendOnce(file, bytes);
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
    if (!this.#dirReady) await fsp.mkdir(this.#dir, { recursive: true, mode: DIR_MODE });
    const fh = await fsp.open(file, APPEND_FLAGS, FILE_MODE).catch(async (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
      await fsp.mkdir(this.#dir, { recursive: true, mode: DIR_MODE });
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
      await DayFileWriter.#writeLine(fh, line);
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

  /**
   * One synchronous write on the open descriptor. Safe against close: `fd` is the current #open, and
   * every close path first replaces #open, so its descriptor cannot be released during this call.
   */
  #writeSync(fd: OpenDayFile, line: Buffer): void {
    const t0 = performance.now();
    const n = writeSync(fd.fh.fd, line, 0, line.length);
    if (performance.now() - t0 > SLOW_SYNC_MS) this.#syncWrites = false;
    if (n !== line.length) throw Object.assign(new Error('short write'), { code: 'ENOSPC' });
  }

  async #appendOpen(file: string, line: Buffer): Promise<void> {
    // The write is issued in the same tick as the check (no await between): a concurrent reopen or
    // close() cannot release this handle before the write is pending on it.
    let fd = this.#current(file);
    try {
      if (fd && this.#syncWrites) return this.#writeSync(fd, line);
      fd ??= await this.#reopen(file);
      if (this.#syncWrites && this.#open === fd) return this.#writeSync(fd, line);
      await DayFileWriter.#writeLine(fd.fh, line);
    } catch (err) {
      if (this.#closed) return this.#appendOnce(file, line); // raced with shutdown: one-shot write
      if (fd && this.#open === fd) {
        this.#open = undefined; // reopen next time (e.g. after ENOSPC or EIO)
        void fd.fh.close().catch(() => undefined);
      }
      throw err;
    }
  }
}

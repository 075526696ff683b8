/**
 * One upstream exchange as undici's dispatch handler: the head resolves a promise, the body is a small
 * push queue with backpressure that the pipeline either iterates (`for await`, streamed calls) or takes
 * whole (buffered calls, small answers).
 *
 * Why not undici's `request()`: it wraps every response in a Node Readable stream (BodyReadable) inside an
 * AsyncResource, and `for await` over a Readable adds an async iterator, a promise per chunk and several
 * `process.nextTick`s per call (emitReadable, maybeReadMore, endReadable). A request worker makes thousands
 * of upstream calls a second and most answers are one small chunk: measured on this machine (c=64, 1 KiB
 * HTTPS answers, undici 7) `request()` + `for await` cost ~120 µs of CPU per call against ~98 µs for
 * `dispatch()` with a plain handler — about a tenth of a request worker's time per call (issue 12). The
 * contract the pipeline relies on is kept: status and parsed headers first, then the body bytes in order;
 * a reader that stops pauses the connection (or the h2 stream); dropping the body aborts the exchange; a
 * transport failure after the head reaches the reader as the undici error it was.
 */
import type { Dispatcher } from 'undici';
import type { CallAbortSignal } from '../../core/threads/call-signal.js';

/** Bytes queued for a reader that is not reading before the upstream is paused (Readable's default). */
export const BODY_HIGH_WATER_BYTES = 64 * 1024;

/** `dump()` reads at most this much more of a body to keep its connection, then aborts (undici's default). */
export const DUMP_LIMIT_BYTES = 128 * 1024;

export type ResponseHeaders = Record<string, string | string[] | undefined>;

export interface UpstreamResponse {
  readonly statusCode: number;
  readonly headers: ResponseHeaders;
  readonly body: UpstreamBody;
}

interface Waiter {
  resolve(r: IteratorResult<Buffer>): void;
  reject(err: unknown): void;
}

interface Collector {
  readonly chunks: Buffer[];
  total: number;
  readonly check: ((received: number) => void) | undefined;
  resolve(body: Uint8Array): void;
  reject(err: unknown): void;
}

/** Thrown into a body that its reader dropped before the end (the exchange is aborted with it). */
export class BodyDiscardedError extends Error {
  override readonly name = 'AbortError';
  readonly code = 'UND_ERR_ABORTED';
  constructor() {
    super('upstream response body discarded');
  }
}

/**
 * A response body: async-iterable once (`for await`), or taken whole once (`whole`, `text`, `json`), or
 * discarded (`dump`, `destroy`). Chunks are the Buffers undici read, handed on without copies (except
 * `whole`, which returns one owned, exactly-sized buffer a call may transfer to another thread).
 */
export class UpstreamBody implements AsyncIterableIterator<Buffer> {
  readonly #controller: Dispatcher.DispatchController;
  #queue: Buffer[] = [];
  #queued = 0;
  #ended = false;
  #error: unknown;
  #failed = false;
  #waiter: Waiter | undefined;
  #collector: Collector | undefined;
  #dump: { left: number; resolve(): void } | undefined;

  constructor(controller: Dispatcher.DispatchController) {
    this.#controller = controller;
  }

  /** From the handler: a chunk arrived. */
  push(chunk: Buffer): void {
    if (this.#failed) return;
    const dump = this.#dump;
    if (dump) {
      dump.left -= chunk.byteLength;
      if (dump.left < 0) this.#discard(); // too much left to read: give the connection up instead
      return;
    }
    const c = this.#collector;
    if (c) {
      c.total += chunk.byteLength;
      try {
        c.check?.(c.total);
      } catch (err) {
        this.#collector = undefined;
        this.#abort(err);
        c.reject(err);
        return;
      }
      c.chunks.push(chunk);
      return;
    }
    const w = this.#waiter;
    if (w) {
      this.#waiter = undefined;
      w.resolve({ value: chunk, done: false });
      return;
    }
    this.#queue.push(chunk);
    this.#queued += chunk.byteLength;
    if (this.#queued >= BODY_HIGH_WATER_BYTES) this.#controller.pause();
  }

  /** From the handler: the body is complete. */
  end(): void {
    if (this.#failed || this.#ended) return;
    this.#ended = true;
    if (this.#dump) return this.#finishDump();
    const c = this.#collector;
    if (c) {
      this.#collector = undefined;
      c.resolve(joinOwned(c.chunks, c.total));
      return;
    }
    const w = this.#waiter;
    if (w) {
      this.#waiter = undefined;
      w.resolve({ value: undefined, done: true });
    }
  }

  /** From the handler: the exchange failed after the head (reset, timeout, abort). */
  fail(err: unknown): void {
    if (this.#failed || this.#ended) return;
    this.#failed = true;
    this.#error = err;
    this.#queue = [];
    this.#queued = 0;
    if (this.#dump) return this.#finishDump();
    const c = this.#collector;
    this.#collector = undefined;
    c?.reject(err);
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.reject(err);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<Buffer>> {
    const head = this.#queue.shift();
    if (head) {
      this.#queued -= head.byteLength;
      if (this.#queue.length === 0 && this.#controller.paused) this.#controller.resume();
      return Promise.resolve({ value: head, done: false });
    }
    if (this.#failed) return Promise.reject(this.#error);
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    if (this.#controller.paused) this.#controller.resume();
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject };
    });
  }

  /** `for await` left early (break, throw): the rest of the body is not wanted. */
  return(): Promise<IteratorResult<Buffer>> {
    this.destroy();
    return Promise.resolve({ value: undefined, done: true });
  }

  /**
   * The whole body in one owned buffer. `check` sees the running total after each chunk and may throw
   * (a size limit): the exchange is then aborted and the promise rejects with what it threw.
   */
  whole(check?: (received: number) => void): Promise<Uint8Array> {
    const chunks = this.#queue;
    const total = this.#queued;
    this.#queue = [];
    this.#queued = 0;
    try {
      check?.(total);
    } catch (err) {
      this.#abort(err);
      return Promise.reject(err);
    }
    if (this.#failed) return Promise.reject(this.#error);
    if (this.#ended) return Promise.resolve(joinOwned(chunks, total));
    if (this.#controller.paused) this.#controller.resume();
    return new Promise((resolve, reject) => {
      this.#collector = { chunks, total, check, resolve, reject };
    });
  }

  async text(): Promise<string> {
    return Buffer.from(await this.whole()).toString('utf8');
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text()) as unknown;
  }

  /**
   * Read and drop the rest so the connection can carry the next call; past DUMP_LIMIT_BYTES the exchange
   * is aborted instead. Never rejects.
   */
  dump(): Promise<void> {
    this.#queue = [];
    this.#queued = 0;
    if (this.#ended || this.#failed) return Promise.resolve();
    return new Promise((resolve) => {
      this.#dump = { left: DUMP_LIMIT_BYTES, resolve };
      if (this.#controller.paused) this.#controller.resume();
    });
  }

  /** The reader is gone: abort the exchange (frees an h1 connection's slot, cancels an h2 stream). */
  destroy(err?: unknown): void {
    this.#abort(err ?? new BodyDiscardedError());
  }

  #abort(err: unknown): void {
    if (this.#ended || this.#failed) return;
    this.fail(err);
    if (!this.#controller.aborted)
      this.#controller.abort(err instanceof Error ? err : new BodyDiscardedError());
  }

  #discard(): void {
    const d = this.#dump;
    this.#dump = undefined;
    this.#abort(new BodyDiscardedError());
    d?.resolve();
  }

  #finishDump(): void {
    const d = this.#dump;
    this.#dump = undefined;
    d?.resolve();
  }
}

function joinOwned(chunks: readonly Buffer[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/**
 * The dispatch handler for one exchange. `signal` (anything with abort listeners, as undici's own
 * `request()` accepts) aborts it before or after the head; the listener is removed when it settles.
 */
export class ExchangeHandler implements Dispatcher.DispatchHandler {
  readonly response: Promise<UpstreamResponse>;
  #resolve!: (r: UpstreamResponse) => void;
  #reject!: (err: unknown) => void;
  #controller: Dispatcher.DispatchController | undefined;
  #body: UpstreamBody | undefined;
  #reason: Error | undefined;
  #signal: CallAbortSignal | undefined;
  #onAbort: (() => void) | undefined;

  constructor(signal: CallAbortSignal | undefined) {
    this.response = new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    if (signal) {
      this.#signal = signal;
      this.#onAbort = () => this.#abortWith(reasonOf(signal));
      signal.addEventListener('abort', this.#onAbort);
    }
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#reason) controller.abort(this.#reason);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: ResponseHeaders,
  ): void {
    if (statusCode < 200 || this.#body) return; // 1xx: informational, the real head follows
    const body = new UpstreamBody(controller);
    this.#body = body;
    this.#resolve({ statusCode, headers, body });
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#body?.push(chunk);
  }

  onResponseEnd(): void {
    this.#settled();
    this.#body?.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    this.#settled();
    if (this.#body) this.#body.fail(err);
    else this.#reject(err);
  }

  #abortWith(reason: Error): void {
    if (this.#reason) return;
    this.#reason = reason;
    // Before onRequestStart (still queued for a connection) the abort waits for it, as request() does.
    this.#controller?.abort(reason);
  }

  #settled(): void {
    if (this.#onAbort) this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#onAbort = undefined;
    this.#signal = undefined;
  }
}

function reasonOf(signal: CallAbortSignal): Error {
  const r = signal.reason;
  return r instanceof Error ? r : new BodyDiscardedError();
}

/**
 * Messages between the daemon's main thread and a request worker on the worker's long-lived MessagePort
 * (one per worker, calls multiplexed by `id`; see src/pool/request-workers.ts), and the worker-side ResponseSink with credit-based backpressure: the worker may post one chunk per credit; the
 * main thread grants credits only while the client socket drains. Chunks are copied once out of undici's
 * buffers into an ArrayBuffer that is transferred (moved, not copied) across the thread boundary; large
 * ones into a pooled buffer that comes back with a later credit (src/core/threads/chunk-buffers.ts).
 * Carries response data only: never a secret, never a key.
 */
import type { MessagePort } from 'node:worker_threads';
import type { WireError } from '../errors.js';
import type { Envelope, HeaderList, RequestContext } from '../broker/types.js';
import type { ApprovalOutcome, ApprovalRequest } from '../../front/approvals.js';
import type { CallTiming, ResponseInfo, ResponseSink } from '../../request-worker/pipeline/types.js';
import { timingsOf, type Timings } from './server-timing.js';
import type { Transport } from './metrics-buffer.js';
import type { CallAbortSignal } from './call-signal.js';
import { usesPooledBuffer, type ChunkBuffers } from './chunk-buffers.js';
import { PortOutbox, type MessagePoster, type TurnTask } from './port-outbox.js';

/** Credits a call starts with (chunks in flight before the first grant). */
export const INITIAL_CREDITS = 4;

export type WorkerToMain =
  /**
   * `timing`: where the call's time went until now (Server-Timing); absent when not measured. `data`: the
   * body's first bytes when they were ready with the head (one message; they take a credit like a chunk).
   */
  | { t: 'head'; status: number; headers: HeaderList; timing?: Timings; data?: ArrayBuffer }
  /**
   * `len`: `data` is a pooled buffer (src/core/threads/chunk-buffers.ts) whose first `len` bytes are the
   * chunk; the main thread gives it back once the client's transport is done with them.
   */
  | { t: 'chunk'; data: ArrayBuffer; len?: number }
  /** `scrubbed`: reflected secret values replaced in this response (a count, never a value). */
  | { t: 'end'; scrubbed?: number; timing?: Timings }
  | {
      t: 'full';
      status: number;
      headers: HeaderList;
      body: ArrayBuffer;
      scrubbed?: number;
      timing?: Timings;
    }
  | { t: 'error'; error: WireError }
  /** The worker has no port to the crypto worker yet: the main thread answers with `crypto-port`. */
  | { t: 'need-crypto' };

export type MainToWorker =
  { t: 'credit'; n: number } | { t: 'abort' } | { t: 'crypto-port'; port: MessagePort };

/**
 * A `/v/{credential}/…` request as the HTTP listener received it. The request worker picks the capability
 * (catalog + policy work stays off the main thread) and builds the envelope.
 */
export interface PassthroughRequest {
  credential: string;
  method: string;
  /** The path after `/v/{credential}` (at least `/`), without the query. */
  path: string;
  /** The raw query string ('' when none). */
  query: string;
  /** Request headers to forward (token and transport headers already dropped). */
  headers: [string, string][];
}

/**
 * What a call asks for, in the form its transport received it: the main thread decodes no more than
 * routing needs. Byte fields are owned ArrayBuffers, transferred (moved) to the worker.
 */
export type CallRequest =
  /** Unix socket: the envelope came decoded with its msgpack frame. */
  | { envelope: Envelope }
  /** POST /aivault/proxy: the JSON envelope, parsed in the worker. */
  | { envelopeJson: ArrayBuffer }
  /** /v/…: the request, matched to a capability in the worker; `body` becomes request.bodyBytes. */
  | { passthrough: PassthroughRequest; body?: ArrayBuffer };

/** One invocation, started on a worker's port. */
export type CallStart = CallRequest & {
  t: 'call';
  id: number;
  context: RequestContext;
  stream: boolean;
  timeoutMs?: number;
  /** Which listener took the call (metrics label); inferred from the request form when absent. */
  transport?: Transport;
};

/** The buffers to transfer with a call's start message. */
export function callTransferList(req: CallRequest): ArrayBuffer[] {
  if ('envelopeJson' in req) return [req.envelopeJson];
  if ('passthrough' in req && req.body) return [req.body];
  return [];
}

/** Main thread → request worker on the worker's port. */
export type MainToWorkerPort =
  | CallStart
  /** `bufs`: pooled chunk buffers given back (for any call on this port). */
  | { t: 'credit'; id: number; n: number; bufs?: ArrayBuffer[] }
  | { t: 'abort'; id: number }
  /** The operator's answer to call `id`'s `approval` request. */
  | { t: 'approval'; id: number; outcome: ApprovalOutcome }
  | { t: 'crypto-port'; port: MessagePort }
  /**
   * The vault was locked: drop every value this worker keeps beyond a call (decrypted secrets, response
   * matchers, mTLS identities, SigV4 signing keys) now, not at the next call or after their idle timers.
   */
  | { t: 'forget' }
  /** Shutdown: release the pipeline (audit file, upstream pools), answer `closed`. */
  | { t: 'close' };

/** A call's message, tagged with its id. */
export type CallMessage = Exclude<WorkerToMain, { t: 'need-crypto' }> & { id: number };

/** Request worker → main thread on the worker's port. */
export type WorkerPortToMain =
  | CallMessage
  /** Call `id`'s capability needs an operator's approval (what will be sent: never a secret). */
  | { t: 'approval'; id: number; request: ApprovalRequest }
  | { t: 'need-crypto' }
  | { t: 'closed' };

/** `{scrubbed: n}` when n > 0, else nothing (the common case adds no field to the message). */
export function scrubbedField(n: number | undefined): { scrubbed?: number } {
  return n !== undefined && n > 0 ? { scrubbed: n } : {};
}

/**
 * Bytes of small chunks the port sink gathers into one message (per event-loop turn). Large enough that a
 * burst of small upstream reads costs one cross-thread message; small enough that memory stays bounded
 * (a call has at most INITIAL_CREDITS messages in flight: 512 KiB). 128, not 64: every message costs a
 * wake-up of the other thread, a credit back and a write to the client, and a large body crossed as
 * ~1,000 messages per 64 MiB; half as many took a 64 MiB socket download from ~330 to ~230 ms of daemon
 * CPU and ~210 to ~300 MB/s (bench/PROFILE.md, "Fewer, larger messages").
 */
export const COALESCE_BYTES = 128 * 1024;

const tag = (t: Timings | undefined): { timing?: Timings } => (t ? { timing: t } : {});

function own(data: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(data.byteLength);
  copy.set(data);
  return copy.buffer;
}

/**
 * The parts copied into one buffer this thread owns and may transfer (`into`, or a new one of `total`
 * bytes). Always a copy: a part may be a view on undici's socket read or on the scrubber's held bytes,
 * which must not be detached from under them.
 */
function concatOwned(parts: readonly Uint8Array[], total: number, into?: ArrayBuffer): ArrayBuffer {
  const out = new Uint8Array(into ?? new ArrayBuffer(total));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  // A reused buffer's tail still holds an earlier chunk, maybe another call's: zero it, so that reading
  // past `len` by mistake anywhere shows zeros, not someone else's response.
  if (into) out.fill(0, at);
  return out.buffer;
}

export type PortSink = ResponseSink & {
  grant(n: number): void;
  /** The call failed: posted after whatever the sink still holds, so the order is kept. */
  error(error: WireError): void;
  /** Resolves once everything held was posted (the call's credits must reach the sink until then). */
  settled(): Promise<void>;
};

/**
 * Worker side: a ResponseSink that posts call `id`'s messages to `port`, one chunk message per credit.
 *
 * Coalescing: head, chunks and end are not posted at once but at the end of the current event-loop turn
 * (or as soon as COALESCE_BYTES are held), so the small reads of one turn travel as one `chunk` message,
 * and a small response that completes within one turn (head + body + end) travels as one `full` message.
 * A chunk arriving in a later turn (an SSE event) is posted at the end of that turn: no added latency
 * beyond the turn. Upstream backpressure is kept: `chunk()` waits while COALESCE_BYTES are held and no
 * credit is left. Chunks are held as views until the flush, then copied once into a buffer that is transferred.
 */
export function createPortSink(
  port: MessagePoster,
  signal: CallAbortSignal,
  id: number,
  timing?: CallTiming,
  buffers?: ChunkBuffers,
  onHead?: () => void,
): PortSink {
  // A bare port (tests) gets an outbox of its own; the worker passes its port's shared one.
  const out = port instanceof PortOutbox ? port : new PortOutbox(port, 'microtask');
  return new CallPortSink(out, signal, id, timing, buffers, onHead);
}

/**
 * A class, not a closure over locals: one sink lives per call in flight (1,000 open streams hold 1,000),
 * and its thirteen methods as closures cost ~1 KB of worker heap a call plus as many allocations on every
 * small call (issue 12: memory at 1,000 open streams, worker GC per call). The abort listener that wakes a
 * flush waiting for a credit is added only while it waits: almost no call ever waits.
 */
class CallPortSink implements PortSink, TurnTask {
  readonly #out: PortOutbox;
  readonly #signal: CallAbortSignal;
  readonly #id: number;
  readonly #timing: CallTiming | undefined;
  readonly #buffers: ChunkBuffers | undefined;
  /** Told when the pipeline gives the head (the worker counts open streams). */
  readonly #onHead: (() => void) | undefined;
  #credits = INITIAL_CREDITS;
  /** Resolves the flush's wait for a credit (or the abort). */
  #waiter: (() => void) | undefined = undefined;
  #head: { status: number; headers: HeaderList; timing?: Timings } | undefined = undefined;
  #parts: Uint8Array[] = [];
  #held = 0;
  /** The terminal message, once the pipeline gave it (posted after what is held). */
  #last: CallMessage | undefined = undefined;
  #scheduled = false;
  /** The flush in progress (it may wait for a credit). */
  #flushing: Promise<void> | undefined = undefined;

  constructor(
    out: PortOutbox,
    signal: CallAbortSignal,
    id: number,
    timing: CallTiming | undefined,
    buffers: ChunkBuffers | undefined,
    onHead: (() => void) | undefined,
  ) {
    this.#out = out;
    this.#signal = signal;
    this.#id = id;
    this.#timing = timing;
    this.#buffers = buffers;
    this.#onHead = onHead;
  }

  #times(): { timing?: Timings } {
    return this.#timing ? { timing: timingsOf(this.#timing) } : {};
  }

  #post(msg: CallMessage, transfer: ArrayBuffer[] = []): void {
    this.#out.postMessage(msg, transfer);
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  /** Wait for a credit or the abort, whichever comes first. */
  async #creditOrAbort(): Promise<void> {
    const signal = this.#signal;
    const onAbort = (): void => this.#wake();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      while (this.#credits <= 0 && !signal.aborted) await new Promise<void>((r) => (this.#waiter = r));
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  #takeHeld(into?: ArrayBuffer): ArrayBuffer {
    const data = concatOwned(this.#parts, this.#held, into);
    this.#parts = [];
    this.#held = 0;
    return data;
  }

  async #flush(): Promise<void> {
    const id = this.#id;
    while (this.#head || this.#held > 0 || this.#last) {
      const head = this.#head;
      const last = this.#last;
      if (head && last?.t === 'end' && this.#held <= COALESCE_BYTES) {
        // A complete small response: one message.
        const body = this.#takeHeld();
        this.#post(
          {
            t: 'full',
            id,
            status: head.status,
            headers: head.headers,
            body,
            ...scrubbedField(last.scrubbed),
            ...(last.timing ? { timing: last.timing } : {}),
          },
          [body],
        );
        this.#head = undefined;
        this.#last = undefined;
        return;
      }
      if (head) {
        const h = { t: 'head', id, status: head.status, headers: head.headers, ...tag(head.timing) } as const;
        this.#head = undefined;
        if (this.#held > 0 && this.#credits > 0 && !this.#signal.aborted) {
          // The first bytes ride with the head (an SSE stream's first event: one hop, not two).
          this.#credits--;
          const data = this.#takeHeld();
          this.#post({ ...h, data }, [data]);
        } else this.#post(h);
      }
      if (this.#held > 0) {
        if (this.#credits <= 0 && !this.#signal.aborted) await this.#creditOrAbort();
        if (this.#signal.aborted) {
          this.#parts = [];
          this.#held = 0;
        } else {
          this.#credits--;
          const held = this.#held;
          const pooled = this.#buffers && usesPooledBuffer(held) ? this.#buffers.take() : undefined;
          const data = this.#takeHeld(pooled);
          this.#post(pooled ? { t: 'chunk', id, data, len: held } : { t: 'chunk', id, data }, [data]);
        }
        continue; // more may have been held while waiting
      }
      if (this.#last) {
        this.#post(this.#last);
        this.#last = undefined;
      }
    }
  }

  #runFlush(): Promise<void> {
    this.#flushing ??= this.#flush().finally(() => {
      this.#flushing = undefined;
    });
    return this.#flushing;
  }

  /** At the end of this turn, with every other sink of the worker (their messages go as one batch). */
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    this.#out.runAtTurnEnd(this);
  }

  atTurnEnd(): void {
    this.#scheduled = false;
    void this.#runFlush();
  }

  grant(n: number): void {
    this.#credits += n;
    this.#wake();
  }

  head(status: number, headers: HeaderList): void {
    this.#onHead?.();
    this.#head = { status, headers, ...this.#times() };
    this.#schedule();
  }

  async chunk(data: Uint8Array): Promise<void> {
    if (this.#signal.aborted) return;
    // Held as it is (no copy here): the one copy into a transferable buffer happens at the flush, so
    // the small reads a message coalesces are copied once, not twice, and leave no garbage behind.
    this.#parts.push(data);
    this.#held += data.byteLength;
    if (this.#held < COALESCE_BYTES) {
      this.#schedule();
      return;
    }
    // Enough held for a message of its own: send it now, and wait here while there is no credit.
    while (this.#flushing) await this.#flushing;
    await this.#runFlush();
  }

  end(info?: ResponseInfo): void {
    this.#last = { t: 'end', id: this.#id, ...scrubbedField(info?.scrubbed), ...this.#times() };
    this.#schedule();
  }

  full(status: number, headers: HeaderList, body: Uint8Array, info?: ResponseInfo): void {
    // Buffered (non-stream) calls: nothing else was sent for this call; post at once.
    const buf = own(body);
    this.#post(
      {
        t: 'full',
        id: this.#id,
        status,
        headers,
        body: buf,
        ...scrubbedField(info?.scrubbed),
        ...this.#times(),
      },
      [buf],
    );
  }

  async settled(): Promise<void> {
    while (this.#head || this.#held > 0 || this.#last) await this.#runFlush();
  }

  error(error: WireError): void {
    this.#last = { t: 'error', id: this.#id, error };
    if (!this.#head && this.#held === 0 && !this.#flushing) {
      this.#post(this.#last);
      this.#last = undefined;
      return;
    }
    this.#schedule();
  }
}

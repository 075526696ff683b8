/**
 * The one credit/backpressure relay of aivaultd's main thread, shared by every transport (unix-socket
 * frames in socket-server.ts, /aivault/proxy and /v/… in http/call-routes.ts, the /aivault/ws relay in
 * http/ws-relay.ts).
 *
 * A request worker may post one chunk per credit (src/core/threads/call-port.ts). `Credits` gives a credit
 * back for every chunk written while the client's send buffer has room, and owes it while the buffer is
 * over its high-water mark; `drained()` (the transport's drain/writable event) pays what is owed. So a
 * client that stops reading stops its upstream, and the daemon holds at most a window of chunks for it.
 *
 * `CallRelay` routes one call's worker messages (head/chunk/end/full/error) to a transport's `RelaySink`
 * with those credits, delivers at most one terminal message, and cancels the call (abort plus one credit,
 * which wakes a worker waiting for credit so it sees the abort). Main thread only; it holds response bytes
 * in transit, never a secret.
 */
import type { WireError } from '../core/errors.js';
import type { HeaderList } from '../core/broker/types.js';
import type { WorkerToMain } from '../core/threads/call-port.js';
import type { Timings } from '../core/threads/server-timing.js';
import type { CallHandlers, InvokeTask } from '../pool/pool-call.js';
import { tapCall } from './call-events-tap.js';
import type { CallTransport } from './call-events.js';

/** What a relay needs from a call: a worker call (pool.startCall) or a WebSocket relay (pool.startWs). */
export interface CreditSource {
  grant(n: number): void;
  abort(): void;
  /** A pooled chunk buffer (a chunk message with `len`) the transport is done with. */
  recycle?(buf: ArrayBuffer): void;
}

/** Credit accounting for one call on one client connection. */
export class Credits {
  /** Credits held back while the client's buffer is full. */
  private owed = 0;

  /**
   * @param hasRoom the client's send buffer is below its high-water mark
   * @param onStarved called when a credit is first held back (the transport then waits for drain)
   */
  constructor(
    private readonly source: CreditSource,
    private readonly hasRoom: () => boolean,
    private readonly onStarved?: () => void,
  ) {}

  /** True while credits are held back for this call. */
  get starved(): boolean {
    return this.owed > 0;
  }

  /** One chunk was handed to the client: give its credit back, or owe it while the buffer is full. */
  written(): void {
    if (this.owed === 0 && this.hasRoom()) {
      this.source.grant(1);
      return;
    }
    this.owed++;
    if (this.owed === 1) this.onStarved?.();
  }

  /** The client's buffer drained: pay back what is owed (if there is room now). True when paid. */
  drained(): boolean {
    if (this.owed === 0 || !this.hasRoom()) return false;
    const n = this.owed;
    this.owed = 0;
    this.source.grant(n);
    return true;
  }

  /** Stop the call: abort, plus one credit so a worker waiting for credit wakes and sees the abort. */
  cancel(): void {
    this.owed = 0;
    this.source.abort();
    this.source.grant(1);
  }
}

/** A transport's side of one call: where its answer goes. Each method writes; none decides policy. */
export interface RelaySink {
  /** `timing`: the worker's stage breakdown until the head (Server-Timing), when measured. */
  head(status: number, headers: HeaderList, timing?: Timings): void;
  /**
   * One piece of a streamed body (the relay accounts its credit). `written`: given only to a sink whose
   * chunkBytesFreed is `written`, which calls it once it no longer holds `data`.
   */
  chunk(data: Uint8Array, written?: () => void): void;
  /**
   * When the sink is done with the bytes chunk() was given, so their buffer can be reused: `now` (it
   * copied or wrote them before returning: uWS `res.write`), `written` (when it calls chunk()'s `written`:
   * the socket's turn writer after its write, a Node stream's write callback). Absent: not known, and the
   * bytes are not reused.
   */
  readonly chunkBytesFreed?: 'now' | 'written';
  end(scrubbed: number | undefined, timing?: Timings): void;
  /** A whole response in one message (a non-stream call, or a small streamed one the worker coalesced). */
  full(
    status: number,
    headers: HeaderList,
    body: Uint8Array,
    scrubbed: number | undefined,
    timing?: Timings,
  ): void;
  /** The call failed; `headSent`: a head already went out (the transport can only cut the body). */
  error(error: WireError, headSent: boolean): void;
  /** Called once, after the terminal message was delivered or the call was stopped. */
  finished?(): void;
  /**
   * Run `writes` as one write to the client (uWS cork): a head that carries its first body bytes goes out
   * in one syscall instead of two (an SSE stream's first event). Optional: without it the writes run as is.
   */
  together?(writes: () => void): void;
  /** The call started (true) or stopped (false) waiting for an operator's approval. */
  awaitingApproval?(waiting: boolean): void;
}

/** Where a finished relay's messages would go: nowhere (see CallRelay.finish). */
const RELEASED: RelaySink = {
  head: () => undefined,
  chunk: () => undefined,
  end: () => undefined,
  full: () => undefined,
  error: () => undefined,
};
const NO_ROOM = (): boolean => false;

/**
 * One call's relay: pass it as the call's handlers to pool.startCall, then `bind` the handle. Messages
 * never arrive before `bind` (they come from another thread, after the current turn).
 *
 * A finished relay lets go of its sink, credits and callbacks (finish()). Why: a relay can outlive its
 * call in V8's old space until the next full collection — promoted while in flight, or still referenced
 * from a Map or Set table that a rehash replaced (V8 allocates the new tables of a promoted table in old
 * space, and the replaced one keeps its entries until that collection); whatever young objects it still
 * points to (the transport's sink and what that closes over) are then kept alive by it and promoted in
 * turn. Letting go cut the main thread's promoted bytes by ~60% and its full collections from 2–3 to 1
 * per 20,000 calls (issue 12, bench/PROFILE.md).
 */
export class CallRelay {
  private credits: Credits | undefined;
  private source: CreditSource | undefined;
  private headSent = false;
  private done = false;

  constructor(
    private sink: RelaySink,
    private hasRoom: () => boolean,
    private onStarved?: (relay: CallRelay) => void,
  ) {}

  bind(source: CreditSource): this {
    this.source = source;
    this.credits = new Credits(source, this.hasRoom, this.onStarved && (() => this.onStarved?.(this)));
    return this;
  }

  get finished(): boolean {
    return this.done;
  }

  get starved(): boolean {
    return this.credits?.starved ?? false;
  }

  /** The worker's message for this call. */
  onMessage(msg: Exclude<WorkerToMain, { t: 'need-crypto' }>): void {
    if (this.done) return;
    switch (msg.t) {
      case 'head': {
        this.headSent = true;
        const data = msg.data;
        if (!data) {
          this.sink.head(msg.status, msg.headers, msg.timing);
          return;
        }
        const both = (): void => {
          this.sink.head(msg.status, msg.headers, msg.timing);
          this.sink.chunk(new Uint8Array(data));
        };
        if (this.sink.together) this.sink.together(both);
        else both();
        this.credits?.written();
        return;
      }
      case 'chunk':
        if (msg.len === undefined) this.sink.chunk(new Uint8Array(msg.data));
        else this.pooledChunk(msg.data, msg.len);
        this.credits?.written();
        return;
      case 'end':
        this.finish((sink) => sink.end(msg.scrubbed, msg.timing));
        return;
      case 'full':
        this.finish((sink) =>
          sink.full(msg.status, msg.headers, new Uint8Array(msg.body), msg.scrubbed, msg.timing),
        );
        return;
      case 'error':
        this.finish((sink) => sink.error(msg.error, this.headSent));
        return;
    }
  }

  /**
   * A chunk in a pooled buffer: its first `len` bytes to the sink, and the buffer back to the worker once
   * the sink no longer reads it, never while it may. Given back before the credit that follows when it
   * can be, so that credit's message carries it.
   */
  private pooledChunk(buf: ArrayBuffer, len: number): void {
    const view = new Uint8Array(buf, 0, len);
    const source = this.source;
    const when = source?.recycle ? this.sink.chunkBytesFreed : undefined;
    if (when === 'written') {
      this.sink.chunk(view, () => source?.recycle?.(buf));
      return;
    }
    this.sink.chunk(view);
    if (when === 'now') source?.recycle?.(buf);
  }

  /** The worker waits (or stopped waiting) for an operator's approval of this call. */
  onApprovalWait(waiting: boolean): void {
    if (!this.done) this.sink.awaitingApproval?.(waiting);
  }

  /** The client drained: pay back owed credits. */
  drained(): boolean {
    return this.credits?.drained() ?? false;
  }

  /** Cancel the call; its terminal message (an error) is still delivered to the sink. */
  cancel(): void {
    if (!this.done) this.credits?.cancel();
  }

  /** Cancel the call and deliver nothing more (the client is gone, or the call was answered otherwise). */
  stop(): void {
    if (this.done) return;
    this.credits?.cancel();
    this.finish();
  }

  /** Whether a head already went out to the client. */
  get answered(): boolean {
    return this.headSent;
  }

  /**
   * The one way a relay ends: mark it done, deliver the terminal message (if any) and `finished`, then drop
   * every reference to the call's other objects (see the class comment).
   */
  private finish(deliver?: (sink: RelaySink) => void): void {
    this.done = true;
    deliver?.(this.sink);
    this.sink.finished?.();
    this.sink = RELEASED;
    this.credits = undefined;
    this.source = undefined;
    this.hasRoom = NO_ROOM;
    this.onStarved = undefined;
  }
}

/** What startRelayedCall needs of the pool (DaemonPool.startCall). */
export interface CallStarter {
  startCall(task: InvokeTask, handlers: CallHandlers): CreditSource;
}

/**
 * Dispatch one call (an envelope, a JSON envelope, or a passthrough request: see CallRequest) and relay its
 * answer into `sink`. Every transport starts its calls here, so a new listener (e.g. a CONNECT proxy) gets
 * the same credits, cancel and terminal semantics. Throws what startCall throws (daemon_busy, …).
 */
export function startRelayedCall(
  pool: CallStarter,
  task: InvokeTask,
  sink: RelaySink,
  hasRoom: () => boolean,
  onStarved?: (relay: CallRelay) => void,
  transport?: CallTransport,
): CallRelay {
  const relay = new CallRelay(sink, hasRoom, onStarved);
  // Call events (dashboard live view): the same handlers when nobody listens.
  return relay.bind(pool.startCall(task, tapCall(task, relay, transport)));
}

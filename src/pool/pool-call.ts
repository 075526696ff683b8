/**
 * One call in flight, on aivaultd's main thread: what a transport hands the pool (InvokeTask), what it gets
 * back (CallHandle) and is told (CallHandlers), and PoolCall, the one object per call that is all three of
 * its handle, its entry in its slot's call map (src/pool/request-workers.ts) and its entry in the pool's
 * set of calls (src/pool/daemon-pool.ts). Nothing else is allocated per call on this side.
 */
import type { RequestContext } from '../core/broker/types.js';
import type { CallMessage, CallRequest, MainToWorkerPort, WorkerToMain } from '../core/threads/call-port.js';
import type { Transport } from '../core/threads/metrics-buffer.js';
import type { ApprovalRequest, ApprovalStore } from '../front/approvals.js';
import type { Slot } from './request-workers.js';
import { MAX_RETURNING_BUFFERS } from '../core/threads/chunk-buffers.js';

/** One call as a transport hands it over (see CallRequest for the request forms). */
export type InvokeTask = CallRequest & {
  context: RequestContext;
  stream: boolean;
  timeoutMs?: number;
  /** Which listener took the call (metrics label; src/core/threads/metrics-buffer.ts). */
  transport?: Transport;
};

export interface CallHandlers {
  /** Every non-control message from the worker (head/chunk/end/full/error). */
  onMessage(msg: Exclude<WorkerToMain, { t: 'need-crypto' }>): void;
  /**
   * The call started (true) or stopped (false) waiting for an operator's approval. A transport that
   * limits calls per connection does not count a waiting call, so waiting calls do not starve others.
   */
  onApprovalWait?(waiting: boolean): void;
}

export interface CallHandle {
  grant(n: number): void;
  /** A pooled chunk buffer the transport is done with: it goes back to the worker with a later credit. */
  recycle?(buf: ArrayBuffer): void;
  abort(): void;
  /** Settles when the call reached a terminal message (end/full/error). */
  readonly done: Promise<void>;
}

/** What a slot's port handler does with a call it finds by id (PoolCall is the only one). */
export interface LiveCall {
  onMessage(msg: CallMessage): void;
  finish(): void;
  awaitApproval(store: ApprovalStore, request: ApprovalRequest): void;
}

/** The handlers of a finished call (nothing reaches them: `terminal` is set first). */
const FINISHED: CallHandlers = { onMessage: () => undefined };

/**
 * One call in flight, main side: its handle (grant/abort), its entry in the slot's call map and in the
 * pool's set, in one object. `done` is made only when asked for (graceful close), not per call.
 */
export class PoolCall implements CallHandle, LiveCall {
  private terminal = false;
  private settle: (() => void) | undefined;
  private settled: Promise<void> | undefined;
  /** Aborted when the call ends while it waits for approval: its pending entry is removed. */
  private approval: AbortController | undefined;

  constructor(
    readonly id: number,
    private readonly slot: Slot,
    private handlers: CallHandlers,
    private readonly registry: Set<CallHandle>,
  ) {}

  /** The worker asks whether the operator approves this call; the outcome goes back on the port. */
  awaitApproval(store: ApprovalStore, request: ApprovalRequest): void {
    if (this.terminal || this.approval) return;
    const ac = new AbortController();
    this.approval = ac;
    this.handlers.onApprovalWait?.(true);
    void store.request(request, ac.signal).then((outcome) => {
      this.approval = undefined;
      if (this.terminal) return;
      this.handlers.onApprovalWait?.(false);
      this.slot.out.postMessage({ t: 'approval', id: this.id, outcome } satisfies MainToWorkerPort);
    });
  }

  grant(n: number): void {
    if (this.terminal) return;
    const bufs = this.slot.returning;
    // Now, not at the outbox's next flush: credits are mostly granted from the turn writer's end-of-turn
    // write, where a scheduled flush would wait a whole loop iteration while the worker waits for them.
    if (bufs.length === 0) {
      this.slot.out.postNow({ t: 'credit', id: this.id, n } satisfies MainToWorkerPort);
      return;
    }
    this.slot.returning = [];
    this.slot.out.postNow({ t: 'credit', id: this.id, n, bufs } satisfies MainToWorkerPort, bufs);
  }

  /** Held for the slot's next credit (any call's); past MAX_RETURNING_BUFFERS it is left to the GC. */
  recycle(buf: ArrayBuffer): void {
    const r = this.slot.returning;
    if (!this.slot.dead && r.length < MAX_RETURNING_BUFFERS) r.push(buf);
  }

  abort(): void {
    if (this.terminal) return;
    this.slot.out.postMessage({ t: 'abort', id: this.id } satisfies MainToWorkerPort);
    this.approval?.abort();
  }

  get done(): Promise<void> {
    if (this.terminal) return Promise.resolve();
    return (this.settled ??= new Promise<void>((r) => (this.settle = r)));
  }

  onMessage(msg: CallMessage): void {
    if (!this.terminal) this.handlers.onMessage(msg);
  }

  finish(): void {
    if (this.terminal) return;
    this.terminal = true;
    this.approval?.abort();
    this.registry.delete(this);
    if (this.slot.calls.size === 0) this.slot.port.unref();
    this.settle?.();
    // A finished call lets go of its transport's handlers: see CallRelay (src/front/relay.ts) for why a
    // dead object that was promoted must not keep young ones alive.
    this.handlers = FINISHED;
    this.settle = undefined;
  }
}

/**
 * A request worker's calls in flight, by the id the main thread gave them: what its port handler needs to
 * reach a running call (credits for its sink, an abort for its signal, the operator's approval answer).
 *
 * An ended call's entry lets go of its sink and signal, because the Map does not let go of the entry:
 * once a Map's table has been promoted to old space, V8 allocates every rehashed table there too, and a
 * table replaced by a rehash stays until the next full collection, still pointing at the entries of the
 * calls that were in flight at that moment. Every scavenge until then treats those entries as live, so an
 * ended call's sink, signal and message were copied twice and promoted: ~2 KB per call whatever the
 * concurrency (bench/PROFILE.md, "Promoted garbage in the request worker"). Now only the entry is.
 */
import type { ApprovalOutcome } from '../front/approvals.js';
import type { CallSignal } from '../core/threads/call-signal.js';
import type { PortSink } from '../core/threads/call-port.js';

export interface ActiveCall {
  sink: PortSink | undefined;
  cancel: CallSignal | undefined;
  /** Set while the call waits for the operator's answer. */
  approved: ((outcome: ApprovalOutcome) => void) | undefined;
}

export class ActiveCalls {
  readonly #byId = new Map<number, ActiveCall>();

  start(id: number, sink: PortSink, cancel: CallSignal): ActiveCall {
    const call: ActiveCall = { sink, cancel, approved: undefined };
    this.#byId.set(id, call);
    return call;
  }

  get(id: number): ActiveCall | undefined {
    return this.#byId.get(id);
  }

  /**
   * The call is over: forget it, dispose its signal, and make its entry hold nothing in case a replaced
   * table still does.
   */
  end(id: number, call: ActiveCall): void {
    this.#byId.delete(id);
    call.cancel?.dispose();
    call.sink = undefined;
    call.cancel = undefined;
    call.approved = undefined;
  }
}

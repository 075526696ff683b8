/**
 * A call's cancellation signal in a request worker: the part of AbortSignal the pipeline, the port sink
 * and undici use (`aborted`, `reason`, abort listeners), without an EventTarget.
 *
 * Why not AbortController: in Node 20 one AbortController plus the two listeners a call adds (the port
 * sink's wake-up, undici's request) and the one undici removes cost ~4 µs of a worker's CPU per call and
 * leave several objects for the GC (measured: 4.0 µs vs 0.08 µs for this class); a request worker runs
 * thousands of calls a second and cancels almost none of them (issue 12: per-call objects). undici takes
 * any object with `addEventListener`/`removeEventListener` as a signal (lib/core/util.js addAbortListener).
 */

/** What consumers of a call's signal may rely on; a real AbortSignal satisfies it too (in-process calls). */
export interface CallAbortSignal {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

export class CallSignal implements CallAbortSignal {
  #aborted = false;
  #reason: unknown = undefined;
  /** Made on the first listener; every listener runs once (the signal aborts at most once). */
  #listeners: (() => void)[] | undefined;

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  /** Every listener runs at most once whatever `options` say: the signal aborts once. */
  addEventListener(_type: 'abort', listener: () => void, _options?: { once?: boolean }): void {
    if (this.#aborted) return; // like AbortSignal: a listener added after the abort never runs
    (this.#listeners ??= []).push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const list = this.#listeners;
    const at = list ? list.indexOf(listener) : -1;
    if (at >= 0) list?.splice(at, 1);
  }

  /**
   * The call is over: forget the listeners (a later abort is a no-op for it anyway). Why: a signal in V8's
   * old space (promoted while its call was in flight, or kept by a replaced Map table: see
   * src/request-worker/active-calls.ts) outlives the call until the next full collection, and would keep
   * the listeners' young closures (and what they hold) alive with it (issue 12: GC).
   */
  dispose(): void {
    this.#listeners = undefined;
  }

  /** Abort with `reason` (an AbortError DOMException when none, as AbortController does); once only. */
  abort(reason?: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason ?? new DOMException('This operation was aborted', 'AbortError');
    const list = this.#listeners;
    this.#listeners = undefined;
    // A listener that throws must not keep the others from running; the first error is thrown after all ran.
    let failed: { err: unknown } | undefined;
    for (const fn of list ?? []) {
      try {
        fn();
      } catch (err) {
        failed ??= { err };
      }
    }
    if (failed) throw failed.err;
  }
}

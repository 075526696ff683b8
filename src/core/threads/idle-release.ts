/**
 * Giving memory back once a daemon thread goes quiet after a burst (issue 12 item 5: RSS).
 *
 * Why: V8 grows an isolate's new space under load (the main thread's from 8 to 32 MB, a request worker's
 * to its 16 MB cap) and keeps dead objects in old space until its next full collection, and it shrinks
 * neither while the thread is idle, because an idle thread allocates nothing and so never collects. An
 * aivaultd that served a burst of calls and then sat idle held ~40 MB more than a fresh one, for as long
 * as it ran (bench/PROFILE.md, "Memory after a burst"). One full collection in a quiet thread returns it:
 * it frees old space's garbage, and V8 shrinks the new space when it collects while its allocation rate
 * over the last 5 s is low (under ~1 MB/s), which is why the release waits more than 5 s of quiet. V8
 * has the last word on the new space: a request worker's always shrank (16 → 1 MB), the main thread's in
 * about half of the runs (32 → 1 MB); a second collection did not change those odds.
 *
 * When: each thread's sampler (thread-sampler.ts) feeds `idleStep` once per second with its event-loop
 * utilisation. A busy sample (above IDLE_UTILIZATION: a burst, the daemon's start-up) arms the release;
 * IDLE_SAMPLES quiet samples in a row then run it, once per quiet period. Single calls spread over time
 * never arm it (a call keeps a thread busy ~1 ms of a second), so an agent that calls every few seconds
 * causes no collections. After a 20 s burst the collection took 1.5–2.6 ms on the main thread and
 * 0.4–0.9 ms in the request worker; a call arriving then waits that long, once, after seconds of quiet.
 */
import { runInNewContext } from 'node:vm';

/** Samples (seconds, at the sampler's 1 s) of quiet before a release: more than V8's 5 s rate window. */
export const IDLE_SAMPLES = 6;
/**
 * Event-loop utilisation at or below which a sample counts as quiet. An idle daemon thread reads 0.2–0.6%
 * (its timers), a thread under load tens of percent.
 */
export const IDLE_UTILIZATION = 0.02;

export interface IdleState {
  /** Quiet samples in a row so far. */
  readonly quiet: number;
  /** A busy sample was seen since the last release. */
  readonly armed: boolean;
}

export const INITIAL_IDLE_STATE: IdleState = { quiet: 0, armed: false };

/** One sample: the next state and whether to release now. Pure. */
export function idleStep(state: IdleState, utilization: number): { state: IdleState; release: boolean } {
  if (utilization > IDLE_UTILIZATION) return { state: { quiet: 0, armed: true }, release: false };
  const quiet = state.quiet + 1;
  if (state.armed && quiet >= IDLE_SAMPLES) return { state: { quiet, armed: false }, release: true };
  return { state: { quiet, armed: state.armed }, release: false };
}

type GcFunction = (options?: { type: 'minor' }) => void;
let gcFn: GcFunction | null | undefined;

/**
 * V8's `gc()`, available once the daemon set `--expose-gc` (src/pool/gc-tuning.ts): Node has no other way
 * to ask for a collection. Taken from a fresh context, because the main thread's global was made before
 * the flag and has none. Null where the flag is not set (tests that run a sampler in-process): nothing is
 * released there.
 */
function collector(): GcFunction | null {
  if (gcFn !== undefined) return gcFn;
  try {
    const fn: unknown = runInNewContext('typeof gc === "function" ? gc : null');
    gcFn = typeof fn === 'function' ? (fn as GcFunction) : null;
  } catch {
    gcFn = null;
  }
  return gcFn;
}

/** Run one full collection in this thread; false when no collector is available. */
export function releaseIdleMemory(): boolean {
  const gc = collector();
  if (!gc) return false;
  // A bare gc() is a synchronous mark-compact: it frees old space's garbage. (Node 20's V8 runs a
  // scavenge, not a full collection, for `{ type: 'major' }`: its trace says so.) Then a scavenge, the
  // collection that measurably shrank a grown new space (bench/PROFILE.md).
  gc();
  gc({ type: 'minor' });
  return true;
}

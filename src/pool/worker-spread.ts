/**
 * How many request workers take new calls (the "active set": the first `active` live workers), decided
 * from what the main thread measured over the last window. Pure: src/pool/worker-load.ts measures, this
 * decides, src/pool/request-workers.ts dispatches.
 *
 * Why not spread every call evenly: each thread a call lands on costs a wake-up per turn, and calls spread
 * over more workers batch less per event-loop turn. On 2 cores at c=64 (bench/PROFILE.md, "Calls packed
 * onto as few workers as keep up"), all calls on one of two workers cost 16–25% less CPU per call and
 * served 4–12% more calls/s than an even spread. So calls go to as few workers as keep up: the set grows
 * while its workers are busy AND the machine has an idle core to run another one; it shrinks when the load
 * fits in fewer workers, or when the cores are saturated with other processes' work (a further worker would
 * only win CPU from them, or from this daemon's own main thread, at a higher cost per call). Both moves need
 * the condition for several windows in a row, so one noisy window changes nothing.
 */

/** What the main thread measured over one window. */
export interface SpreadSample {
  /** Mean event-loop utilisation (0..1) of the workers in the active set. */
  readonly activeElu: number;
  /** Cores nobody used (every CPU's idle time over the window / the window). */
  readonly idleCores: number;
  /** Cores that processes other than this daemon used over the window. */
  readonly otherCores: number;
}

export interface SpreadState {
  /** Workers taking new calls: 1..total. */
  readonly active: number;
  /** Windows in a row that asked to grow / to shrink. */
  readonly growStreak: number;
  readonly shrinkStreak: number;
}

export const SPREAD_RULES = {
  /** Grow when the active workers are at least this busy… */
  growElu: 0.85,
  /** …and at least this much CPU sat idle (a core for the new worker, most of it)… */
  growIdleCores: 0.75,
  /** …for this many windows in a row. */
  growWindows: 2,
  /** Shrink when the load would fit in one worker fewer at this utilisation… */
  fitElu: 0.6,
  /** …or when the machine is saturated (less idle than this) … */
  saturatedIdleCores: 0.1,
  /** …by other processes using at least this much CPU… */
  contendedOtherCores: 0.5,
  /** …for this many windows in a row. */
  shrinkWindows: 4,
} as const;

export const INITIAL_SPREAD: SpreadState = { active: 1, growStreak: 0, shrinkStreak: 0 };

/** The active set after one more window (`total`: live workers; the result stays within 1..total). */
export function nextSpread(state: SpreadState, total: number, s: SpreadSample): SpreadState {
  const n = Math.max(1, total);
  const k = Math.min(Math.max(1, state.active), n);
  const r = SPREAD_RULES;
  const wantsGrow = k < n && s.activeElu >= r.growElu && s.idleCores >= r.growIdleCores;
  const fits = k > 1 && (s.activeElu * k) / (k - 1) < r.fitElu;
  const contended = k > 1 && s.idleCores < r.saturatedIdleCores && s.otherCores >= r.contendedOtherCores;
  const growStreak = wantsGrow ? state.growStreak + 1 : 0;
  const shrinkStreak = fits || contended ? state.shrinkStreak + 1 : 0;
  if (growStreak >= r.growWindows) return { active: k + 1, growStreak: 0, shrinkStreak: 0 };
  if (shrinkStreak >= r.shrinkWindows) return { active: k - 1, growStreak: 0, shrinkStreak: 0 };
  return { active: k, growStreak, shrinkStreak };
}

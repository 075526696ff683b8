/**
 * A call's per-stage time breakdown as it travels: from the request worker (CallTiming, filled in by
 * invokeCapability) to the main thread (head/full/end messages), then to clients as a `Server-Timing`
 * header (HTTP routes) or a `timing` field (socket frames, `aivault invoke -v`). Pure: numbers only.
 */
import type { CallTiming } from '../../request-worker/pipeline/types.js';

/** Milliseconds per stage; `total` is start → now (the head, or the end of the body). */
export interface Timings {
  readonly policy?: number;
  readonly secret?: number;
  readonly upstream?: number;
  readonly total: number;
}

const round = (ms: number): number => Math.round(ms * 1000) / 1000;

/**
 * A snapshot of `t` taken now (performance.now() clock). Built field by field: the spread form made three
 * throw-away objects per message on every call (issue 12: per-call garbage).
 */
export function timingsOf(t: CallTiming, now: number = performance.now()): Timings {
  const out: { -readonly [K in keyof Timings]?: Timings[K] } = {};
  if (t.policyMs !== undefined) out.policy = round(t.policyMs);
  if (t.secretMs !== undefined) out.secret = round(t.secretMs);
  if (t.upstreamMs !== undefined) out.upstream = round(t.upstreamMs);
  out.total = round(now - t.start); // last, as the stages run (JSON output keeps this order)
  return out as Timings;
}

/** `policy;dur=0.41, secret;dur=0.02, upstream;dur=12.3, total;dur=13.1` (stages not reached are left out). */
export function formatServerTiming(t: Timings): string {
  const parts: string[] = [];
  if (t.policy !== undefined) parts.push(`policy;dur=${t.policy}`);
  if (t.secret !== undefined) parts.push(`secret;dur=${t.secret}`);
  if (t.upstream !== undefined) parts.push(`upstream;dur=${t.upstream}`);
  parts.push(`total;dur=${t.total}`);
  return parts.join(', ');
}

/** Whether a decoded `timing` field has the right shape (frames from the daemon are validated). */
export function isTimings(v: unknown): v is Timings {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  const num = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x) && x >= 0;
  for (const k of Object.keys(o)) if (!['policy', 'secret', 'upstream', 'total'].includes(k)) return false;
  return (
    num(o.total) &&
    (o.policy === undefined || num(o.policy)) &&
    (o.secret === undefined || num(o.secret)) &&
    (o.upstream === undefined || num(o.upstream))
  );
}

/**
 * Refuse to measure on a busy machine: ratios against baselines measured in the same run are robust to a
 * little noise, not to other test suites eating the cores the daemon, the upstream and the load
 * generator share. Refuses (exit 2) when the 1-minute load average exceeds half the cores, unless
 * `--shared-ok` (then the report says so). Runs in the bench's process before anything starts.
 */
import { availableParallelism, loadavg } from 'node:os';

export const MAX_LOAD_PER_CORE = 0.5;

export type LoadVerdict =
  { readonly ok: true; readonly note?: string } | { readonly ok: false; readonly message: string };

/** Pure decision, for tests: the 1-minute load average against `MAX_LOAD_PER_CORE × cores`. */
export function checkLoad(load1: number, cores: number, sharedOk: boolean): LoadVerdict {
  const limit = MAX_LOAD_PER_CORE * cores;
  if (load1 <= limit) return { ok: true };
  const what = `1-minute load average ${load1.toFixed(2)} is above ${limit.toFixed(2)} (${MAX_LOAD_PER_CORE} × ${cores} cores)`;
  if (sharedOk) {
    return { ok: true, note: `Measured on a busy machine (--shared-ok): ${what}; ratios are noisy.` };
  }
  return {
    ok: false,
    message: `bench: refusing to measure: ${what}. Other work on this machine would skew every figure; wait for it to finish, or pass --shared-ok to measure anyway (the report will say so).`,
  };
}

/** Check this machine now; on refusal print the reason and exit 2. Returns a note for the report, if any. */
export function enforceLoadGuard(argv: readonly string[]): string | undefined {
  const verdict = checkLoad(loadavg()[0] ?? 0, availableParallelism(), argv.includes('--shared-ok'));
  if (!verdict.ok) {
    process.stderr.write(`${verdict.message}\n`);
    process.exit(2);
  }
  return verdict.note;
}

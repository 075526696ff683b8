/**
 * Section `interleaved` (bench process): node-floor and aivaultd measured at c=64 in alternating short
 * rounds, the order rotated each round, so each round's ratio compares two windows taken seconds apart on
 * the same machine. The `load` section measures every target in one window each, minutes apart, and on a
 * shared VM node-floor's own CPU per call moved 67–107 µs between runs (bench/PROFILE.md): a ratio of two
 * such windows says as much about the neighbours as about aivaultd. The targets use the median of these
 * per-round ratios when this section ran (bench/targets.ts), and print the single-window ratio beside it.
 * Then the same at c=1 for latency (`c1Targets`, `direct` among them): each round's p50 of a target minus
 * direct's p50 of that round is what the target adds; the c=1 targets use the median of those.
 */
import { drive } from '../support/children.js';
import type { LoadResult } from '../support/driver.js';
import { API, log, type BenchContext, type BenchTarget } from '../support/context.js';

export const INTERLEAVED_CONCURRENCY = 64;

export async function interleavedSection(
  ctx: BenchContext,
  targets: readonly BenchTarget[],
  c1Targets: readonly BenchTarget[] = [],
): Promise<void> {
  const { P, quick, results } = ctx;
  const rounds = quick ? 2 : 5;
  const durationMs = quick ? 1000 : 2000;
  /** Every target once per round at `concurrency`, the order rotated each round; `keep` sees each result. */
  const alternate = async (
    list: readonly BenchTarget[],
    concurrency: number,
    keep: (round: number, t: BenchTarget, r: LoadResult) => void,
  ): Promise<void> => {
    // Round -1 is not recorded: each target's first window after the section started (a daemon that was
    // just started, a cold driver) read several times its steady CPU per call in trial runs.
    for (let round = -1; round < rounds; round++) {
      const order = list.map((_, i) => list[(i + Math.max(0, round)) % list.length] as BenchTarget);
      for (const t of order) {
        const r = await drive<LoadResult>({
          mode: 'http',
          target: t.target,
          pids: t.pids,
          concurrency,
          durationMs,
          warmupMs: Math.min(P.warmupMs, 500),
          path: API,
        });
        if (round >= 0) keep(round, t, r);
      }
    }
  };

  const rows: NonNullable<typeof results.interleaved>['rows'] = [];
  await alternate(targets, INTERLEAVED_CONCURRENCY, (round, t, r) => {
    rows.push({ round, target: t.name, rps: r.rps, cpuUsPerReq: r.cpuUsPerReq, errors: r.errors });
    log(
      `  round ${round + 1}/${rounds} ${t.name.padEnd(26)} ${r.rps.toFixed(0).padStart(6)} req/s  cpu ${r.cpuUsPerReq.toFixed(0)} µs/req  err ${r.errors}`,
    );
  });
  results.interleaved = { concurrency: INTERLEAVED_CONCURRENCY, rounds, seconds: durationMs / 1000, rows };
  if (c1Targets.length < 2) return;
  const c1: NonNullable<typeof results.interleavedC1>['rows'] = [];
  await alternate(c1Targets, 1, (round, t, r) => {
    c1.push({ round, target: t.name, p50us: r.p50us, errors: r.errors });
    log(
      `  c=1 round ${round + 1}/${rounds} ${t.name.padEnd(26)} p50 ${(r.p50us / 1000).toFixed(3)} ms  err ${r.errors}`,
    );
  });
  results.interleavedC1 = { rounds, seconds: durationMs / 1000, rows: c1 };
}

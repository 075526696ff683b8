/**
 * Section `wrk` (bench process, full run only): wrk (support/wrk.lua) on every HTTP target at each
 * concurrency, as a cross-check of the driver's figures with another load generator. A point wrk cannot
 * measure is listed as skipped with the reason.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { LoadResult } from '../support/driver.js';
import { cpuMicros, rssBytes } from '../support/proc.js';
import { log, ROOT, type BenchContext, type BenchTarget } from '../support/context.js';

function runWrk(
  url: string,
  c: number,
  seconds: number,
  pids: number[],
  header?: string,
): LoadResult & { generator: string } {
  const env = { ...process.env, BENCH_WRK_HEADER: header ?? '' };
  const lua = join(ROOT, 'bench', 'support', 'wrk.lua');
  const base = ['-t', '1', '-c', String(c), '--timeout', '10s', '-s', lua, url];
  spawnSync('wrk', ['-d', '1s', ...base], { env, stdio: 'ignore' }); // warm-up
  const cpu0 = cpuMicros(pids);
  const r = spawnSync('wrk', ['-d', `${seconds}s`, ...base], { env, encoding: 'utf8' });
  const cpu1 = cpuMicros(pids);
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('WRKJSON '));
  if (!line) throw new Error(`wrk produced no summary: ${r.stderr}`);
  const j = JSON.parse(line.slice(8)) as {
    requests: number;
    durationUs: number;
    errors: number;
    p50us: number;
    p99us: number;
    p999us: number;
    meanUs: number;
  };
  const durationMs = j.durationUs / 1000;
  return {
    generator: 'wrk',
    requests: j.requests,
    errors: j.errors,
    durationMs,
    rps: (j.requests / durationMs) * 1000,
    p50us: j.p50us,
    p99us: j.p99us,
    p999us: j.p999us,
    meanUs: j.meanUs,
    cpuUsPerReq: j.requests ? (cpu1 - cpu0) / j.requests : 0,
    cpuCoresBusy: (cpu1 - cpu0) / 1000 / durationMs,
    rssMB: rssBytes(pids) / 1048576,
  };
}

export function wrkSection(ctx: BenchContext, httpTargets: readonly BenchTarget[]): void {
  const { P, results } = ctx;
  log('bench: load (wrk cross-check) …');
  for (const t of httpTargets) {
    for (const c of P.conc) {
      let r: ReturnType<typeof runWrk>;
      try {
        r = runWrk(t.wrkUrl as string, c, Math.round(P.durationMs / 1000), t.pids, t.wrkHeader);
      } catch (err) {
        results.skipped.push({
          target: `wrk ${t.name} c=${c}`,
          reason: (err as Error).message.slice(0, 200),
        });
        continue;
      }
      results.load.push({ target: t.name, concurrency: c, ...r });
      log(
        `  wrk ${t.name.padEnd(18)} c=${String(c).padEnd(3)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${(r.p50us / 1000).toFixed(2)} ms`,
      );
    }
  }
}

/**
 * Sections `micro` and `fleet` (bench process): the micro-benchmarks (bench/micro.ts, tinybench) and
 * fleet admission (bench/fleet.ts: local SharedArrayBuffer vs Redis), each run in its own process that
 * prints its table rows as one JSON line; fleet's rows are appended to the micro table.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import type { Results } from '../support/report.js';
import { log, ROOT, TSX, type BenchContext } from '../support/context.js';

export function microSection(ctx: BenchContext): void {
  const { quick, results, baseEnv, vaultDir } = ctx;
  const r = spawnSync(
    process.execPath,
    [...TSX, join(ROOT, 'bench', 'micro.ts'), ...(quick ? ['--quick'] : [])],
    {
      cwd: ROOT,
      env: { ...baseEnv, BENCH_VAULT_DIR: vaultDir },
      encoding: 'utf8',
      timeout: 300_000,
    },
  );
  const line = (r.stdout ?? '').trim().split('\n').at(-1) ?? '';
  if (r.status === 0 && line.startsWith('[')) results.micro = JSON.parse(line) as Results['micro'];
  else
    results.skipped.push({
      target: 'micro-benchmarks',
      reason: `bench/micro.ts failed: ${(r.stderr ?? '').slice(-300)}`,
    });
}

/** Fleet admission (issue 18), rows appended to the micro table. */
export function fleetSection(ctx: BenchContext): void {
  const { quick, results, baseEnv } = ctx;
  log('bench: fleet admission …');
  const r = spawnSync(
    process.execPath,
    [...TSX, join(ROOT, 'bench', 'fleet.ts'), ...(quick ? ['--quick'] : [])],
    {
      cwd: ROOT,
      env: baseEnv,
      encoding: 'utf8',
      timeout: 300_000,
    },
  );
  const line = (r.stdout ?? '').trim().split('\n').at(-1) ?? '';
  if (r.status === 0 && line.startsWith('['))
    results.micro = [...(results.micro ?? []), ...(JSON.parse(line) as NonNullable<Results['micro']>)];
  else
    results.skipped.push({
      target: 'fleet admission',
      reason: `bench/fleet.ts failed: ${(r.stderr ?? '').slice(-300)}`,
    });
}

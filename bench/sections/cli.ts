/**
 * Section `cli` (bench process): wall time of one `aivault invoke` (the bundled bin, through the 2-worker
 * daemon) beside `node -e 0` and curl to the same upstream — hyperfine when it can be installed, else
 * repeated timed runs.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDebian } from '../support/nginx.js';
import type { Results } from '../support/report.js';
import { CLI, type BenchContext } from '../support/context.js';

/** Measured against the daemon listening on `socketPath`. */
export function runCliBench(ctx: BenchContext, socketPath: string): Results['cli'] {
  const { P, env, upstream: up } = ctx;
  const cliEnv = { ...env, AIVAULTD_SOCKET: socketPath };
  const body = '{"model":"gpt-bench"}';
  const cmds = {
    'node -e 0': [process.execPath, '-e', '0'],
    'aivault invoke': [process.execPath, CLI, 'invoke', 'openai/chat-completions', '--body', body],
    curl: [
      'curl',
      '-s',
      '-o',
      '/dev/null',
      '--cacert',
      up.caCertPath,
      '-H',
      'content-type: application/json',
      '-d',
      body,
      `https://localhost:${up.port}/v1/chat/completions`,
    ],
  } as const;
  // sanity: the CLI call must succeed
  const check = spawnSync(cmds['aivault invoke'][0], cmds['aivault invoke'].slice(1), {
    env: cliEnv,
    encoding: 'utf8',
  });
  if (check.status !== 0) throw new Error(`aivault invoke failed: ${check.stderr}`);
  // The VM's speed drifts over minutes, and hyperfine times its commands one after another: a slow minute
  // under one command and a fast one under the other moved the ratio by 0.3 between runs. So the runs are
  // split into CLI_ROUNDS rounds whose command order alternates, and the target is the median of the
  // per-round ratios (like the interleaved c=64 rounds); medians and means pool every run.
  const names = Object.keys(cmds) as (keyof typeof cmds)[];
  const perRound = Math.max(3, Math.ceil(P.cliRuns / CLI_ROUNDS));
  const times: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const roundMedians: Record<string, number>[] = [];
  const hfWhy = ensureDebian('hyperfine', ['hyperfine']);
  let tool = hfWhy ? `repeated runs (hyperfine unavailable: ${hfWhy})` : 'hyperfine';
  for (let round = 0; round < CLI_ROUNDS; round++) {
    const order = round % 2 === 0 ? names : [...names].reverse();
    const got =
      (tool === 'hyperfine' ? hyperfineRound(order, cmds, perRound, cliEnv) : undefined) ??
      timedRound(order, cmds, perRound, cliEnv);
    if (tool === 'hyperfine' && got.tool !== 'hyperfine') tool = got.tool;
    const medians: Record<string, number> = {};
    for (const n of names) {
      const t = got.times[n] as number[];
      (times[n] as number[]).push(...t);
      medians[n] = median(t);
    }
    roundMedians.push(medians);
  }
  const out: NonNullable<Results['cli']> = {
    tool,
    runs: perRound * CLI_ROUNDS,
    medianMs: {},
    meanMs: {},
    stddevMs: {},
    invokeRatioRounds: roundMedians.map((m) => (m['aivault invoke'] as number) / (m['node -e 0'] as number)),
  };
  for (const n of names) {
    const t = times[n] as number[];
    const mean = t.reduce((a, b) => a + b, 0) / t.length;
    out.medianMs[n] = median(t);
    out.meanMs[n] = mean;
    out.stddevMs[n] = Math.sqrt(t.reduce((a, b) => a + (b - mean) ** 2, 0) / t.length);
  }
  return out;
}

/** Rounds of the CLI comparison (alternating command order). */
const CLI_ROUNDS = 6;

type Commands = Record<string, readonly string[]>;
interface Round {
  tool: string;
  /** Wall ms of each run, per command. */
  times: Record<string, number[]>;
}

function median(values: readonly number[]): number {
  const v = [...values].sort((a, b) => a - b);
  return v[Math.floor(v.length / 2)] as number;
}

/** One round under hyperfine (no shell, 2 warm-up runs); undefined when hyperfine fails. */
function hyperfineRound(
  order: readonly string[],
  cmds: Commands,
  runs: number,
  env: NodeJS.ProcessEnv,
): Round | undefined {
  const json = join(tmpdir(), `hyperfine-${process.pid}.json`);
  const q = (a: readonly string[]): string => a.map((x) => `'${x.replace(/'/g, "'\\''")}'`).join(' ');
  const r = spawnSync(
    'hyperfine',
    [
      '-N',
      '--warmup',
      '2',
      '--runs',
      String(runs),
      '--export-json',
      json,
      ...order.map((n) => q(cmds[n] as readonly string[])),
    ],
    { env, encoding: 'utf8' },
  );
  if (r.status !== 0) return undefined;
  const j = JSON.parse(readFileSync(json, 'utf8')) as { results: { times: number[] }[] };
  rmSync(json, { force: true });
  const times: Record<string, number[]> = {};
  order.forEach((n, i) => (times[n] = (j.results[i]?.times ?? []).map((s) => s * 1000)));
  return { tool: 'hyperfine', times };
}

/** One round of timed spawns (2 warm-up runs each), when hyperfine is not there. */
function timedRound(order: readonly string[], cmds: Commands, runs: number, env: NodeJS.ProcessEnv): Round {
  const times: Record<string, number[]> = {};
  for (const n of order) {
    const argv = cmds[n] as readonly string[];
    const t: number[] = [];
    for (let i = 0; i < runs + 2; i++) {
      const t0 = performance.now();
      spawnSync(argv[0] as string, argv.slice(1), { env, stdio: 'ignore' });
      if (i >= 2) t.push(performance.now() - t0);
    }
    times[n] = t;
  }
  return { tool: 'repeated runs (hyperfine failed)', times };
}

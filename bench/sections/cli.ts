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
  const out: NonNullable<Results['cli']> = {
    tool: '',
    runs: P.cliRuns,
    medianMs: {},
    meanMs: {},
    stddevMs: {},
  };
  const hfWhy = ensureDebian('hyperfine', ['hyperfine']);
  if (!hfWhy) {
    const json = join(tmpdir(), `hyperfine-${process.pid}.json`);
    const q = (a: readonly string[]): string => a.map((x) => `'${x.replace(/'/g, "'\\''")}'`).join(' ');
    const r = spawnSync(
      'hyperfine',
      [
        '-N',
        '--warmup',
        '3',
        '--runs',
        String(P.cliRuns),
        '--export-json',
        json,
        ...Object.values(cmds).map(q),
      ],
      { env: cliEnv, encoding: 'utf8' },
    );
    if (r.status === 0) {
      const names = Object.keys(cmds);
      const j = JSON.parse(readFileSync(json, 'utf8')) as {
        results: { median: number; mean: number; stddev: number }[];
      };
      j.results.forEach((x, i) => {
        const n = names[i] as string;
        out.medianMs[n] = x.median * 1000;
        out.meanMs[n] = x.mean * 1000;
        out.stddevMs[n] = x.stddev * 1000;
      });
      out.tool = 'hyperfine';
      rmSync(json, { force: true });
      return out;
    }
  }
  out.tool = `repeated runs (hyperfine unavailable: ${hfWhy ?? 'failed'})`;
  for (const [n, argv] of Object.entries(cmds)) {
    const t: number[] = [];
    for (let i = 0; i < P.cliRuns + 3; i++) {
      const t0 = performance.now();
      spawnSync(argv[0], argv.slice(1), { env: cliEnv, stdio: 'ignore' });
      if (i >= 3) t.push(performance.now() - t0);
    }
    t.sort((a, b) => a - b);
    out.medianMs[n] = t[Math.floor(t.length / 2)] as number;
    out.meanMs[n] = t.reduce((a, b) => a + b, 0) / t.length;
  }
  return out;
}

/**
 * Runs the Jazzer.js targets in targets.ts under libFuzzer: bundles them to one CommonJS file (Jazzer.js 2.x
 * instruments through the CJS require hook), writes seeds and a dictionary into the working corpus, spawns
 * the `jazzer` CLI for a bounded time and reads libFuzzer's own status lines back.
 *
 * The native addon is built from @jazzer.js/fuzzer's sources against Debian's libFuzzer by
 * scripts/build-jazzer.sh (run by `npm test`'s set-up step, scripts/setup-test-env.sh); without it every run reports `addonMissing`.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { build } from 'esbuild';
import { DICTIONARIES, SEEDS, dictionaryText, type JazzerTarget } from './seeds.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const CLI = join(ROOT, 'node_modules/@jazzer.js/core/dist/cli.js');
const ADDON = join(ROOT, 'node_modules/@jazzer.js/fuzzer/build/Release/jazzerjs.node');
// Inside the project (not /tmp) so the bundle's `require` resolves the project's node_modules, and not
// under node_modules, which Jazzer.js excludes from instrumentation.
const BUILD_DIR = join(ROOT, '.fuzz-build');

export interface JazzerRun {
  target: JazzerTarget;
  exitCode: number | null;
  /** libFuzzer's coverage features after the seeds ran (INITED) and at the end (DONE). */
  initialFeatures: number;
  finalFeatures: number;
  executions: number;
  /** Crashing inputs libFuzzer wrote (a finding). */
  artifacts: string[];
  output: string;
}

export function jazzerAvailable(): { ok: true } | { ok: false; why: string } {
  if (!existsSync(CLI)) return { ok: false, why: '@jazzer.js/core is not installed (npm install)' };
  if (!existsSync(ADDON))
    return {
      ok: false,
      why: 'the Jazzer.js addon is not built (apt-get install libclang-rt-14-dev; bash scripts/build-jazzer.sh)',
    };
  return { ok: true };
}

let bundled: Promise<string> | undefined;

/** One CommonJS bundle exporting every target (built once per process). */
export function bundleTargets(): Promise<string> {
  bundled ??= (async () => {
    const outfile = join(BUILD_DIR, 'targets.cjs');
    await build({
      entryPoints: [join(import.meta.dirname, 'targets.ts')],
      outfile,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      // msgpackr's optional native accelerator is not JS and cannot be instrumented; the JS decoder is.
      external: ['msgpackr-extract'],
      // Sources are ESM; `import.meta.url` (createRequire in lazy loaders) has no CJS meaning by itself.
      define: { 'import.meta.url': '__aivaultImportMetaUrl' },
      banner: { js: "const __aivaultImportMetaUrl = require('node:url').pathToFileURL(__filename).href;" },
      logLevel: 'error',
    });
    return outfile;
  })();
  return bundled;
}

/** Inputs that once broke a property (committed, replayed first on every run). */
const REGRESSIONS = join(import.meta.dirname, 'regressions');

function writeCorpusSeeds(target: JazzerTarget, corpusDir: string): void {
  mkdirSync(corpusDir, { recursive: true });
  const regressionDir = join(REGRESSIONS, target);
  const regressions = existsSync(regressionDir)
    ? readdirSync(regressionDir).map((f) => readFileSync(join(regressionDir, f)))
    : [];
  for (const seed of [...SEEDS[target](), ...regressions]) {
    const name = `seed-${createHash('sha1').update(seed).digest('hex').slice(0, 16)}`;
    writeFileSync(join(corpusDir, name), seed);
  }
}

function lastStat(output: string, event: 'INITED' | 'DONE'): number {
  const all = [...output.matchAll(new RegExp(`#(\\d+)\\s+${event}\\s+cov: \\d+ ft: (\\d+)`, 'g'))];
  const last = all.at(-1);
  return last ? Number(last[2]) : -1;
}

export interface RunOptions {
  seconds: number;
  /** Working corpus (seeds are added; libFuzzer adds what it finds). */
  corpusDir: string;
  /** Where crashing inputs go. */
  artifactDir: string;
  maxLen?: number;
}

export async function runJazzer(target: JazzerTarget, opts: RunOptions): Promise<JazzerRun> {
  const bundle = await bundleTargets();
  writeCorpusSeeds(target, opts.corpusDir);
  mkdirSync(opts.artifactDir, { recursive: true });
  const dict = join(BUILD_DIR, `${target}.dict`);
  if (DICTIONARIES[target].length) writeFileSync(dict, dictionaryText(target));
  const args = [
    CLI,
    bundle,
    opts.corpusDir,
    '--sync',
    '-f',
    target,
    // The targets are pure parsers (no fs, no child processes); the bug detectors' hooks would only
    // slow them down.
    '--disable_bug_detectors=.*',
    '--',
    `-max_total_time=${opts.seconds}`,
    `-max_len=${opts.maxLen ?? 4096}`,
    `-artifact_prefix=${opts.artifactDir}/`,
    `-dict=${dict}`,
    // Value profiling turns "how many bytes of this comparison matched" into coverage, which is what
    // walks string and integer checks forward one byte at a time.
    '-use_value_profile=1',
    '-print_final_stats=1',
  ];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exitCode = await new Promise<number | null>((res) => child.on('close', (code) => res(code)));
  const executions = Math.max(
    0,
    ...[...output.matchAll(/^#(\d+)\s/gm), ...output.matchAll(/Done (\d+) runs/g)].map((m) => Number(m[1])),
  );
  return {
    target,
    exitCode,
    initialFeatures: lastStat(output, 'INITED'),
    finalFeatures: Math.max(
      lastStat(output, 'DONE'),
      ...[...output.matchAll(/ ft: (\d+)/g)].map((m) => Number(m[1])),
    ),
    executions,
    artifacts: readdirSync(opts.artifactDir)
      .filter((f) => f.startsWith('crash-') || f.startsWith('timeout-') || f.startsWith('oom-'))
      .map((f) => join(opts.artifactDir, f)),
    output,
  };
}

/** The crashing input of a finding, for the failure message. */
export function describeArtifact(path: string): string {
  const bytes = readFileSync(path);
  return `${path} (${bytes.length} bytes): ${JSON.stringify(bytes.toString('utf8').slice(0, 300))} base64=${bytes.toString('base64').slice(0, 400)}`;
}

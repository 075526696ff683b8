/**
 * The bench's command line (bench process): --quick, --no-build, --out DIR, --only SECTIONS, --merge FILE,
 * --stability-s N, and the parameter set a quick or a full run measures with. (--render and --shared-ok
 * are read by bench/run.ts and bench/load-guard.ts.)
 */
import { join, resolve } from 'node:path';
import { ROOT, type Params } from './context.js';

export interface BenchOptions {
  readonly quick: boolean;
  readonly noBuild: boolean;
  readonly out: string;
  /** Sections: load, wrk, http, scrape, stream, interleaved, open, stability, cli, micro (`--only open,cli` while developing). */
  readonly only: ReadonlySet<string> | undefined;
  readonly merge: string | undefined;
  readonly P: Params;
  /** Whether a section runs (every one without --only). */
  want(section: string): boolean;
}

export function parseOptions(args: readonly string[]): BenchOptions {
  const quick = args.includes('--quick');
  const only = args.includes('--only')
    ? new Set((args[args.indexOf('--only') + 1] as string).split(','))
    : undefined;
  const P: Params = quick
    ? {
        durationMs: 1500,
        warmupMs: 500,
        conc: [1, 64, 256],
        workers: [1, 2],
        wrk: false,
        sseEvents: 10,
        sseInterval: 20,
        openStreams: 1000,
        openEvents: 4,
        openInterval: 1000,
        stabilityMs: 10_000,
        largeBytes: 16 << 20,
        largeRepeats: 2,
        cliRuns: 10,
      }
    : {
        durationMs: 5000,
        warmupMs: 1000,
        conc: [1, 16, 64, 256],
        workers: [1, 2, 4],
        wrk: true,
        sseEvents: 10,
        sseInterval: 25,
        openStreams: 1000,
        openEvents: 10,
        openInterval: 1000,
        stabilityMs: 60_000,
        largeBytes: 64 << 20,
        largeRepeats: 3,
        cliRuns: 30,
      };
  if (args.includes('--stability-s')) P.stabilityMs = Number(args[args.indexOf('--stability-s') + 1]) * 1000;
  return {
    quick,
    noBuild: args.includes('--no-build'),
    out: args.includes('--out')
      ? resolve(args[args.indexOf('--out') + 1] as string)
      : join(ROOT, 'bench', 'results'),
    only,
    merge: args.includes('--merge') ? resolve(args[args.indexOf('--merge') + 1] as string) : undefined,
    P,
    want: (section) => !only || only.has(section),
  };
}

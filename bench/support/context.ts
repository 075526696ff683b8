/**
 * What every bench section shares (bench process, CLI side): the repository paths it runs, the run's
 * parameters, the long-lived processes the orchestrator (bench/run.ts) started, and the results being
 * filled in. A section measures, pushes rows into `results`, and stops what it started.
 */
import { join, resolve } from 'node:path';
import type { Target } from './driver.js';
import type { Results } from './report.js';

export const ROOT = resolve(import.meta.dirname, '..', '..');
// The bundled CLI: what the `aivault` bin runs (package.json), so its start-up is what gets measured.
export const CLI = join(ROOT, 'dist', 'src', 'cli-bundle', 'main.js');
export const DAEMON = join(ROOT, 'dist', 'src', 'front', 'main.js');
export const TSX = ['--import', 'tsx'];
/** The upstream path every call asks for. */
export const API = '/v1/chat/completions';

export const log = (s: string): void => void process.stderr.write(`${s}\n`);

/** Run parameters (bench/support/options.ts: the quick or the full set). A type, so it is a Record. */
export type Params = {
  durationMs: number;
  warmupMs: number;
  conc: number[];
  workers: number[];
  wrk: boolean;
  sseEvents: number;
  sseInterval: number;
  openStreams: number;
  openEvents: number;
  openInterval: number;
  stabilityMs: number;
  largeBytes: number;
  largeRepeats: number;
  cliRuns: number;
};

export interface Daemon {
  pid: number;
  socketPath: string;
  workers: number;
  httpPort?: number;
  stop(): Promise<void>;
}

/** A load target with the processes whose CPU and RSS count for it. */
export interface BenchTarget {
  name: string;
  target: Target;
  pids: number[];
  /** For the wrk cross-check (HTTP targets only). */
  wrkUrl?: string;
  wrkHeader?: string;
}

export interface BenchContext {
  readonly P: Params;
  readonly quick: boolean;
  readonly results: Results;
  /** The environment without AIVAULT_KEY. */
  readonly baseEnv: NodeJS.ProcessEnv;
  /** baseEnv + the dev vault, dev resolve/CA for the bench upstream. */
  readonly env: NodeJS.ProcessEnv;
  readonly vaultDir: string;
  readonly upstream: { readonly port: number; readonly caCertPath: string };
  /** Start aivaultd with N request workers (and extra flags, and env on top of `env`), warmed up. */
  startDaemon(workers: number, extra?: string[], envOverride?: NodeJS.ProcessEnv): Promise<Daemon>;
}

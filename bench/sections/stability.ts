/**
 * Section `stability` (bench process): c=64 through the 2-worker aivaultd's socket for P.stabilityMs
 * (60 s in a full run), RSS sampled every second; growth = the last quarter's mean minus the second's.
 */
import { drive } from '../support/children.js';
import type { LoadResult } from '../support/driver.js';
import { rssBytes } from '../support/proc.js';
import { API, log, type BenchContext, type Daemon } from '../support/context.js';

export async function stabilitySection(ctx: BenchContext, d2: Daemon): Promise<void> {
  const { P, results } = ctx;
  const samples: number[] = [];
  const timer = setInterval(() => samples.push(rssBytes([d2.pid]) / 1048576), 1000);
  const r = await drive<LoadResult>({
    mode: 'http',
    target: { kind: 'socket', socketPath: d2.socketPath, capability: 'openai/chat-completions' },
    pids: [d2.pid],
    concurrency: 64,
    durationMs: P.stabilityMs,
    warmupMs: 1000,
    path: API,
  });
  clearInterval(timer);
  const q = Math.max(1, Math.floor(samples.length / 4));
  const avg = (a: number[]): number => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);
  const early = avg(samples.slice(q, 2 * q));
  const late = avg(samples.slice(-q));
  results.stability = {
    target: 'aivaultd-w2',
    concurrency: 64,
    seconds: P.stabilityMs / 1000,
    rps: r.rps,
    errors: r.errors,
    rssSamplesMB: samples.map((s) => Number(s.toFixed(1))),
    rssEarlyMB: early,
    rssLateMB: late,
    growthMB: late - early,
  };
  log(`  rss ${early.toFixed(1)} → ${late.toFixed(1)} MB at ${r.rps.toFixed(0)} req/s`);
}

/**
 * Section `load` (bench process): closed-loop load (support/driver.ts) at each concurrency — first the
 * HTTP targets (direct, node-floor, nginx), then aivaultd over its unix socket with 1/2/4 request
 * workers, with the crypto worker's utilisation from the daemon's status frame. `measurePoint` is the
 * one load point every section's table row comes from.
 */
import { connect } from '../../src/core/protocol/client.js';
import { drive } from '../support/children.js';
import type { LoadResult, Target } from '../support/driver.js';
import { API, log, type BenchContext, type BenchTarget } from '../support/context.js';

/** One load point: `c` concurrent callers for P.durationMs after a warm-up; the row goes into results.load. */
export async function measurePoint(
  ctx: BenchContext,
  name: string,
  target: Target,
  pids: number[],
  c: number,
): Promise<LoadResult> {
  const { P, results } = ctx;
  const r = await drive<LoadResult>({
    mode: 'http',
    target,
    pids,
    concurrency: c,
    durationMs: P.durationMs,
    warmupMs: P.warmupMs,
    path: API,
  });
  results.load.push({ target: name, generator: 'driver', concurrency: c, ...r });
  log(
    `  ${name.padEnd(22)} c=${String(c).padEnd(3)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${(r.p50us / 1000).toFixed(2)} ms  p99 ${(r.p99us / 1000).toFixed(2)} ms  cpu ${r.cpuUsPerReq.toFixed(0)} µs/req  err ${r.errors}`,
  );
  return r;
}

/** The HTTP targets at every concurrency (the driver as the one load generator, for fair ratios). */
export async function loadHttpTargets(ctx: BenchContext, httpTargets: readonly BenchTarget[]): Promise<void> {
  for (const t of httpTargets)
    for (const c of ctx.P.conc) await measurePoint(ctx, t.name, t.target, t.pids, c);
}

/** aivaultd over the socket, 1/2/4 workers; crypto utilisation at c=64 with 2 workers. */
export async function loadDaemonWorkers(ctx: BenchContext): Promise<void> {
  const { P, results } = ctx;
  const statusOf = async (socketPath: string): Promise<Record<string, unknown>> => {
    const c = await connect({ socketPath });
    try {
      return await c.operator('status');
    } finally {
      c.close();
    }
  };
  for (const w of P.workers) {
    const d = await ctx.startDaemon(w);
    const target: Target = {
      kind: 'socket',
      socketPath: d.socketPath,
      capability: 'openai/chat-completions',
    };
    for (const c of P.conc) {
      const before = await statusOf(d.socketPath);
      const r = await measurePoint(ctx, `aivaultd-w${w}`, target, [d.pid], c);
      const after = await statusOf(d.socketPath);
      if (typeof after.cryptoElActiveMs === 'number' && typeof before.cryptoElActiveMs === 'number') {
        const act = (after.cryptoElActiveMs as number) - before.cryptoElActiveMs;
        const idle = (after.cryptoElIdleMs as number) - (before.cryptoElIdleMs as number);
        const u = act / Math.max(1e-9, act + idle);
        (results.load.at(-1) as { cryptoElu?: number }).cryptoElu = u;
        if (w === 2 || (w === P.workers.at(-1) && !results.crypto)) {
          if (c === 64 || !results.crypto)
            results.crypto = { workers: w, concurrency: c, utilisation: u, rps: r.rps };
        }
      } else if (!results.crypto) {
        results.notes.push(
          'the daemon`s status frame has no cryptoElActiveMs: crypto worker utilisation not measured',
        );
      }
    }
    await d.stop();
  }
}

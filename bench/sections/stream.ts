/**
 * Section `stream` (bench process): SSE time to first event and inter-event delay (1 and 32 concurrent
 * streams), then a large streamed body, through every streaming target. `startStreamDaemon` starts the
 * 2-worker daemon that this and the open, stability and cli sections share, and records its idle RSS.
 */
import { drive } from '../support/children.js';
import { rssBytes } from '../support/proc.js';
import { API, log, type BenchContext, type BenchTarget, type Daemon } from '../support/context.js';

/**
 * The shared 2-worker daemon, its idle RSS (started and warmed up: pool, crypto port, catalog, TLS —
 * before any load), and the streaming targets: the HTTP targets that are not the envelope route, the
 * daemon's socket, and `aivaultd-http-proxy` when the http section ran.
 */
export async function startStreamDaemon(
  ctx: BenchContext,
  httpTargets: readonly BenchTarget[],
  httpDaemon: Daemon | undefined,
): Promise<{ d2: Daemon; streamTargets: BenchTarget[] }> {
  const { results } = ctx;
  const d2 = await ctx.startDaemon(2);
  // Idle RSS: started and warmed up (pool, crypto port, catalog, TLS), before any load.
  await new Promise((r) => setTimeout(r, 1000));
  results.idle = { target: 'aivaultd-w2', rssMB: rssBytes([d2.pid]) / 1048576 };
  log(`  idle RSS aivaultd-w2 ${results.idle.rssMB.toFixed(0)} MB`);
  const streamTargets: BenchTarget[] = [
    ...httpTargets.filter((t) => !t.target.envelopeRoute),
    {
      name: 'aivaultd-w2',
      target: { kind: 'socket', socketPath: d2.socketPath, capability: 'openai/chat-completions' },
      pids: [d2.pid],
    },
  ];
  if (httpDaemon) {
    const hp = httpTargets.find((t) => t.name === 'aivaultd-http-proxy');
    if (hp) streamTargets.push(hp);
  }
  return { d2, streamTargets };
}

export async function streamSection(ctx: BenchContext, streamTargets: readonly BenchTarget[]): Promise<void> {
  const { P, quick, results } = ctx;
  for (const streams of [1, 32]) {
    for (const t of streamTargets) {
      const r = await drive<Record<string, number>>({
        mode: 'sse',
        target: t.target,
        pids: t.pids,
        path: `${API}/sse?n=${P.sseEvents}&interval=${P.sseInterval}`,
        streams,
        events: P.sseEvents,
        intervalMs: P.sseInterval,
        rounds: streams === 1 ? (quick ? 5 : 20) : quick ? 1 : 3,
        warmupPath: `${API}/sse?n=1&interval=0`,
      });
      results.sse.push({ target: t.name, ...r });
      log(
        `  sse ${t.name.padEnd(20)} streams=${streams} ttfe p50 ${(r.ttfeP50us! / 1000).toFixed(2)} ms  gap p99 +${(r.gapExcessP99us! / 1000).toFixed(2)} ms`,
      );
    }
  }
  for (const t of streamTargets) {
    const r = await drive<Record<string, number>>({
      mode: 'large',
      target: t.target,
      pids: t.pids,
      path: `${API}/large?bytes=${P.largeBytes}`,
      bytes: P.largeBytes,
      repeats: P.largeRepeats,
    });
    results.large.push({ target: t.name, ...r });
    log(`  large ${t.name.padEnd(18)} ${r.mbPerSec!.toFixed(0)} MB/s`);
  }
}

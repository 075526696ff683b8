/**
 * Section `open` (bench process): 1,000 concurrent open SSE streams (ramped over 1 s) through node-floor
 * and the 2-worker aivaultd: RSS idle and at most, event delivery delay, errors.
 */
import { drive } from '../support/children.js';
import { rssBytes } from '../support/proc.js';
import { API, log, type BenchContext, type BenchTarget } from '../support/context.js';

export async function openSection(ctx: BenchContext, streamTargets: readonly BenchTarget[]): Promise<void> {
  const { P, results } = ctx;
  for (const t of [
    streamTargets.find((s) => s.name === 'node-floor'),
    streamTargets.find((s) => s.name === 'aivaultd-w2'),
  ]) {
    if (!t) continue;
    const idle = rssBytes(t.pids) / 1048576;
    const r = await drive<Record<string, number>>({
      mode: 'sse',
      target: t.target,
      pids: t.pids,
      path: `${API}/sse?n=${P.openEvents}&interval=${P.openInterval}`,
      streams: P.openStreams,
      events: P.openEvents,
      intervalMs: P.openInterval,
      rampMs: 1000,
    });
    results.openStreams.push({ target: t.name, rssIdleMB: idle, ...r });
    if (r.errorSamples) log(`    errors: ${r.errorSamples}`);
    log(
      `  ${t.name.padEnd(14)} ${r.opened}/${r.streams} open, RSS max ${r.rssMaxMB!.toFixed(0)} MB (idle ${idle.toFixed(0)}), delay p99 ${r.deliveryDelayP99ms} ms, errors ${r.errors}`,
    );
  }
}

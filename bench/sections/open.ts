/**
 * Section `open` (bench process): 1,000 concurrent open SSE streams (ramped over 1 s) through node-floor
 * and the 2-worker aivaultd: RSS idle and at most, event delivery delay, errors. Then the same through a
 * fresh 2-worker aivaultd whose upstream speaks HTTP/2 as the large providers do (`aivaultd-w2-h2up`:
 * the streams multiplexed, up to 100 per connection), next to one whose upstream is the HTTP/1.1 one
 * (`aivaultd-w2-fresh`), so the protocol is the only difference between those two rows.
 */
import { join } from 'node:path';
import { drive, startChild, stopChild } from '../support/children.js';
import { rssBytes } from '../support/proc.js';
import { API, log, ROOT, TSX, type BenchContext, type BenchTarget } from '../support/context.js';

export async function openSection(ctx: BenchContext, streamTargets: readonly BenchTarget[]): Promise<void> {
  await measure(ctx, [
    streamTargets.find((s) => s.name === 'node-floor'),
    streamTargets.find((s) => s.name === 'aivaultd-w2'),
  ]);
  const h2 = await startChild(
    process.execPath,
    [...TSX, join(ROOT, 'bench', 'support', 'upstream.ts'), '--h2'],
    ctx.baseEnv,
    /^\{"port"/,
  );
  try {
    const info = JSON.parse(h2.line) as { port: number; caCertPath: string };
    for (const [name, env] of [
      ['aivaultd-w2-fresh', {}],
      [
        'aivaultd-w2-h2up',
        {
          AIVAULT_DEV_RESOLVE: `api.openai.com=127.0.0.1:${info.port}`,
          AIVAULT_DEV_CA_CERT_PATH: info.caCertPath,
        },
      ],
    ] as const) {
      const d = await ctx.startDaemon(2, [], env);
      try {
        await new Promise((r) => setTimeout(r, 1000));
        await measure(ctx, [
          {
            name,
            target: { kind: 'socket', socketPath: d.socketPath, capability: 'openai/chat-completions' },
            pids: [d.pid],
          },
        ]);
      } finally {
        await d.stop();
      }
    }
  } finally {
    await stopChild(h2.child);
  }
}

async function measure(ctx: BenchContext, targets: readonly (BenchTarget | undefined)[]): Promise<void> {
  const { P, results } = ctx;
  for (const t of targets) {
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

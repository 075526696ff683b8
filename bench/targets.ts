/**
 * The bench's targets (issue 12, "Targets"), evaluated from one run's figures: every target is a ratio or
 * a difference against baselines measured IN THE SAME RUN (node-floor, nginx, direct, `node -e 0`), and
 * prints PASS, MISS or N/A (not measured in this run) with the ratio. The c=64 CPU and req/s ratios come
 * from the interleaved rounds when that section ran (the median of per-round ratios; the single-window
 * ratio of the load section is printed beside it). Pure: bench/run.ts calls it after
 * measuring (and on --render); test/unit/bench/targets.test.ts covers it. Runs in the bench's process.
 */
import type { LoadRow, Results, TargetCheck } from './support/report.js';
import { spreadOf, type Spread } from './support/spread.js';

/** The aivaultd paths each per-path target is checked on, with the bench's target names. */
export const PATHS = [
  { label: 'passthrough', target: 'aivaultd-http-passthrough' },
  { label: 'unix socket', target: 'aivaultd-w2' },
] as const;

/** Issue 12's thresholds (stretch goals are reported as their own lines). */
export const LIMITS = {
  cpuVsNodeFloor: 1.0,
  cpuVsNodeFloorStretch: 0.5,
  rpsVsNodeFloor: 1.0,
  rpsVsNginxStretch: 0.5,
  p50AddedUs: 300,
  sseFirstEventAddedUs: { 1: 500, 32: 3000 },
  invokeVsNodeE0: 1.3,
  rssOpenStreamsMB: 150,
  rssIdleMB: 120,
  cryptoUtilisation: 0.1,
  rssGrowthMB: 10,
} as const;

const x2 = (n: number): string => `${n.toFixed(2)}×`;

/** Per-round ratios of `target` to node-floor (interleaved section): median, range and round count. */
export function interleavedRatio(
  r: Results,
  target: string,
  metric: 'cpuUsPerReq' | 'rps',
): Spread | undefined {
  const rows = r.interleaved?.rows ?? [];
  const ratios: number[] = [];
  for (const a of rows) {
    if (a.target !== target || a.errors > 0) continue;
    const nf = rows.find((x) => x.round === a.round && x.target === 'node-floor' && x.errors === 0);
    if (nf && nf[metric] > 0) ratios.push(a[metric] / nf[metric]);
  }
  return spreadOf(ratios);
}

/** Per-round p50 µs `target` adds to direct at c=1 (interleaved section): median, range and round count. */
export function interleavedAdded(r: Results, target: string): Spread | undefined {
  const rows = r.interleavedC1?.rows ?? [];
  const added: number[] = [];
  for (const a of rows) {
    if (a.target !== target || a.errors > 0) continue;
    const d = rows.find((x) => x.round === a.round && x.target === 'direct' && x.errors === 0);
    if (d) added.push(a.p50us - d.p50us);
  }
  return spreadOf(added);
}

function describeInterleaved(i: Spread): string {
  return `${x2(i.median)} (median of ${i.rounds} alternating rounds, ${x2(i.min)}–${x2(i.max)})`;
}
const ms3 = (us: number): string => `${(us / 1000).toFixed(3)} ms`;

export function evaluateTargets(r: Results): TargetCheck[] {
  const get = (target: string, c: number): LoadRow | undefined =>
    r.load.find((x) => x.target === target && x.concurrency === c && x.generator === 'driver');
  const checks: TargetCheck[] = [];
  const add = (name: string, value: string, ok: boolean | undefined, note = ''): void =>
    void checks.push({ name, value, status: ok === undefined ? 'N/A' : ok ? 'PASS' : 'MISS', note });

  const nf64 = get('node-floor', 64);
  const ng64 = get('nginx', 64);
  const d1 = get('direct', 1);
  // What the minimal node:http + undici proxy adds in the same run: where a latency target sits below
  // what any Node proxy reaches on this machine, the row says so (the target still decides PASS/MISS).
  const nf1 = get('node-floor', 1);
  const floorAdds = (added: number | undefined): string =>
    added === undefined ? '' : `; node-floor adds ${ms3(added)}`;
  for (const p of PATHS) {
    const a64 = get(p.target, 64);
    const cpuWindow = a64 && nf64 ? a64.cpuUsPerReq / nf64.cpuUsPerReq : undefined;
    const cpuWindowValue =
      a64 && nf64 && cpuWindow !== undefined
        ? `${a64.cpuUsPerReq.toFixed(0)} vs ${nf64.cpuUsPerReq.toFixed(0)} µs = ${x2(cpuWindow)}`
        : undefined;
    const cpuRounds = interleavedRatio(r, p.target, 'cpuUsPerReq');
    const cpu = cpuRounds?.median ?? cpuWindow;
    const cpuValue = cpuRounds
      ? `${describeInterleaved(cpuRounds)}${cpuWindowValue ? `; one window each: ${cpuWindowValue}` : ''}`
      : (cpuWindowValue ?? 'n/a');
    add(
      `CPU µs/request at c=64 ≤ ${LIMITS.cpuVsNodeFloor}× node-floor (${p.label})`,
      cpuValue,
      cpu === undefined ? undefined : cpu <= LIMITS.cpuVsNodeFloor,
    );
    add(
      `stretch: CPU µs/request at c=64 ≤ ${LIMITS.cpuVsNodeFloorStretch}× node-floor (${p.label})`,
      cpuValue,
      cpu === undefined ? undefined : cpu <= LIMITS.cpuVsNodeFloorStretch,
    );
    const rpsWindow = a64 && nf64 ? a64.rps / nf64.rps : undefined;
    const rpsWindowValue =
      a64 && nf64 && rpsWindow !== undefined
        ? `${a64.rps.toFixed(0)} vs ${nf64.rps.toFixed(0)} req/s = ${x2(rpsWindow)}`
        : undefined;
    const rpsRounds = interleavedRatio(r, p.target, 'rps');
    const rps = rpsRounds?.median ?? rpsWindow;
    add(
      `c=64 req/s ≥ ${LIMITS.rpsVsNodeFloor}× node-floor, 2 workers (${p.label})`,
      rpsRounds
        ? `${describeInterleaved(rpsRounds)}${rpsWindowValue ? `; one window each: ${rpsWindowValue}` : ''}`
        : (rpsWindowValue ?? 'n/a'),
      rps === undefined ? undefined : rps >= LIMITS.rpsVsNodeFloor,
    );
    const vsNginx = a64 && ng64 ? a64.rps / ng64.rps : undefined;
    add(
      `stretch: c=64 req/s ≥ ${LIMITS.rpsVsNginxStretch}× nginx (${p.label})`,
      a64 && ng64 && vsNginx !== undefined
        ? `${a64.rps.toFixed(0)} vs ${ng64.rps.toFixed(0)} req/s = ${x2(vsNginx)}`
        : 'nginx not measured',
      vsNginx === undefined ? undefined : vsNginx >= LIMITS.rpsVsNginxStretch,
    );
    const a1 = get(p.target, 1);
    const added = a1 && d1 ? a1.p50us - d1.p50us : undefined;
    const window1 =
      a1 && d1 && added !== undefined
        ? `${ms3(added)} (p50 ${ms3(a1.p50us)} vs direct ${ms3(d1.p50us)})`
        : 'n/a';
    const addedRounds = interleavedAdded(r, p.target);
    const floorRounds = interleavedAdded(r, 'node-floor');
    add(
      `p50 added at c=1 ≤ ${LIMITS.p50AddedUs / 1000} ms (${p.label})`,
      addedRounds
        ? `${ms3(addedRounds.median)} (median of ${addedRounds.rounds} alternating rounds, ${ms3(addedRounds.min)}–${ms3(addedRounds.max)}); one window: ${window1}${floorAdds(floorRounds?.median)}`
        : `${window1}${window1 === 'n/a' ? '' : floorAdds(nf1 && d1 ? nf1.p50us - d1.p50us : undefined)}`,
      addedRounds
        ? addedRounds.median <= LIMITS.p50AddedUs
        : added === undefined
          ? undefined
          : added <= LIMITS.p50AddedUs,
    );
    for (const streams of [1, 32] as const) {
      const lim = LIMITS.sseFirstEventAddedUs[streams];
      const s = r.sse.find((x) => x.target === p.target && x.streams === streams);
      const dir = r.sse.find((x) => x.target === 'direct' && x.streams === streams);
      const sT = typeof s?.ttfeP50us === 'number' ? s.ttfeP50us : undefined;
      const dT = typeof dir?.ttfeP50us === 'number' ? dir.ttfeP50us : undefined;
      const sseAdded = sT !== undefined && dT !== undefined ? sT - dT : undefined;
      const nfS = r.sse.find((x) => x.target === 'node-floor' && x.streams === streams);
      const nfT = typeof nfS?.ttfeP50us === 'number' ? nfS.ttfeP50us : undefined;
      add(
        `SSE first event added ≤ ${lim / 1000} ms, ${streams} stream${streams > 1 ? 's' : ''} (${p.label})`,
        sseAdded !== undefined
          ? `${ms3(sseAdded)} (p50 ${ms3(sT as number)} vs direct ${ms3(dT as number)})${floorAdds(nfT !== undefined ? nfT - (dT as number) : undefined)}`
          : 'n/a',
        sseAdded === undefined ? undefined : sseAdded <= lim,
      );
    }
  }

  const inv = r.cli?.medianMs['aivault invoke'];
  const node0 = r.cli?.medianMs['node -e 0'];
  const pooled = inv !== undefined && node0 ? inv / node0 : undefined;
  const pooledValue =
    inv !== undefined && node0 !== undefined && pooled !== undefined
      ? `${inv.toFixed(1)} vs ${node0.toFixed(1)} ms = ${x2(pooled)}`
      : undefined;
  const invRounds = spreadOf(r.cli?.invokeRatioRounds ?? []);
  const invRatio = invRounds?.median ?? pooled;
  add(
    `\`aivault invoke\` wall ≤ ${LIMITS.invokeVsNodeE0}× \`node -e 0\``,
    invRounds
      ? `${describeInterleaved(invRounds)}${pooledValue ? `; all runs pooled: ${pooledValue}` : ''}`
      : (pooledValue ?? 'n/a'),
    invRatio === undefined ? undefined : invRatio <= LIMITS.invokeVsNodeE0,
  );

  const os = r.openStreams.find((x) => x.target === 'aivaultd-w2');
  const rssMax = typeof os?.rssMaxMB === 'number' ? os.rssMaxMB : undefined;
  add(
    `daemon RSS ≤ ${LIMITS.rssOpenStreamsMB} MB with ${r.params.openStreams} open streams`,
    os && rssMax !== undefined
      ? `${rssMax.toFixed(0)} MB (${os.opened}/${os.streams} opened, ${os.errors} errors)`
      : 'n/a',
    os && rssMax !== undefined ? rssMax <= LIMITS.rssOpenStreamsMB && os.opened === os.streams : undefined,
  );
  // The same target on a fresh daemon whose upstream speaks h2 (as OpenAI and Anthropic do): informative
  // beside the row above, which keeps the HTTP/1.1 upstream every other section uses.
  const h2 = r.openStreams.find((x) => x.target === 'aivaultd-w2-h2up');
  const h2Max = typeof h2?.rssMaxMB === 'number' ? h2.rssMaxMB : undefined;
  if (h2 && h2Max !== undefined) {
    add(
      `daemon RSS ≤ ${LIMITS.rssOpenStreamsMB} MB with ${r.params.openStreams} open streams, h2 upstream`,
      `${h2Max.toFixed(0)} MB (${h2.opened}/${h2.streams} opened, ${h2.errors} errors; fresh daemon)`,
      h2Max <= LIMITS.rssOpenStreamsMB && h2.opened === h2.streams,
    );
  }
  add(
    `daemon RSS ≤ ${LIMITS.rssIdleMB} MB idle`,
    r.idle ? `${r.idle.rssMB.toFixed(0)} MB (${r.idle.target}, after warm-up)` : 'n/a',
    r.idle ? r.idle.rssMB <= LIMITS.rssIdleMB : undefined,
  );

  add(
    `crypto worker utilisation < ${LIMITS.cryptoUtilisation * 100}% at c=64`,
    r.crypto
      ? `${(r.crypto.utilisation * 100).toFixed(1)}% busy at ${r.crypto.rps.toFixed(0)} req/s (w${r.crypto.workers}, c=${r.crypto.concurrency})`
      : 'not measured',
    r.crypto ? r.crypto.utilisation < LIMITS.cryptoUtilisation : undefined,
  );
  const st = r.stability;
  add(
    `no RSS growth over a ${st?.seconds ?? 60} s run (≤ ${LIMITS.rssGrowthMB} MB)`,
    st
      ? `${st.rssEarlyMB.toFixed(1)} → ${st.rssLateMB.toFixed(1)} MB (${st.growthMB >= 0 ? '+' : ''}${st.growthMB.toFixed(1)} MB) at ${st.rps.toFixed(0)} req/s`
      : 'n/a',
    st ? st.growthMB <= LIMITS.rssGrowthMB : undefined,
    r.mode === 'quick' ? 'quick mode: shortened run' : '',
  );
  return checks;
}

/** One line per target for the terminal: `PASS  name  value`. */
export function formatTargets(checks: readonly TargetCheck[]): string {
  const pass = checks.filter((c) => c.status === 'PASS').length;
  const miss = checks.filter((c) => c.status === 'MISS').length;
  return [
    `targets: ${pass} PASS, ${miss} MISS, ${checks.length - pass - miss} N/A`,
    ...checks.map((c) => `  ${c.status.padEnd(4)}  ${c.name}: ${c.value}${c.note ? ` (${c.note})` : ''}`),
  ].join('\n');
}

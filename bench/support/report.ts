/** Result types of a bench run and their Markdown renderings (<date>.md and LATEST.md). */
import type { LoadResult } from './driver.js';

export interface TargetCheck {
  name: string;
  value: string;
  status: 'PASS' | 'MISS' | 'N/A';
  note: string;
}

export type LoadRow = LoadResult & {
  target: string;
  generator: string;
  concurrency: number;
  cryptoElu?: number;
};
type Row = { target: string } & Record<string, number | string>;

/** One micro-benchmark row (bench/micro.ts, bench/fleet.ts). */
export interface MicroRow {
  name: string;
  baseline?: string;
  opsPerSec: number;
  usPerOp: number;
  p99us?: number;
  ratio?: number;
  note?: string;
}

export interface Results {
  date: string;
  mode: 'quick' | 'full';
  params: {
    durationMs: number;
    conc: number[];
    workers: number[];
    openStreams: number;
    sseEvents: number;
    sseInterval: number;
    largeBytes: number;
    stabilityMs: number;
    cliRuns: number;
  } & Record<string, unknown>;
  machine: {
    cpuModel: string;
    cores: number;
    memGB: number;
    kernel: string;
    os: string;
    node: string;
    loadavgStart: number[];
    loadavgEnd: number[];
    otherNodeProcessesAtStart: number;
    otherNodeProcessesAtEnd?: number;
  };
  versions: Record<string, string>;
  load: LoadRow[];
  sse: Row[];
  openStreams: Row[];
  large: Row[];
  stability:
    | {
        target: string;
        concurrency: number;
        seconds: number;
        rps: number;
        errors: number;
        rssSamplesMB: number[];
        rssEarlyMB: number;
        rssLateMB: number;
        growthMB: number;
      }
    | undefined;
  crypto: { workers: number; concurrency: number; utilisation: number; rps: number } | undefined;
  /**
   * c=64 in alternating short rounds (sections/interleaved.ts): per round, each target's req/s and CPU µs
   * per call; the CPU and req/s targets use the median of the per-round ratios to node-floor.
   */
  interleaved?: {
    concurrency: number;
    rounds: number;
    seconds: number;
    rows: { round: number; target: string; rps: number; cpuUsPerReq: number; errors: number }[];
  };
  /**
   * c=1 in alternating short rounds (same section): per round, each target's p50 µs; what a target adds is
   * its p50 minus direct's p50 of the same round, and the c=1 target uses the median over the rounds.
   */
  interleavedC1?: {
    rounds: number;
    seconds: number;
    rows: { round: number; target: string; p50us: number; errors: number }[];
  };
  /** Daemon RSS once started and warmed up, before any load (issue 12: ≤ 120 MB idle). */
  idle?: { target: string; rssMB: number };
  cli:
    | {
        tool: string;
        runs: number;
        medianMs: Record<string, number>;
        meanMs: Record<string, number>;
        stddevMs: Record<string, number>;
        /** `aivault invoke` / `node -e 0` per round (medians), rounds alternating the command order. */
        invokeRatioRounds?: number[];
      }
    | undefined;
  micro: MicroRow[] | undefined;
  checks: TargetCheck[];
  skipped: { target: string; reason: string }[];
  notes: string[];
  elapsedS?: number;
}

const f0 = (n: number): string => n.toFixed(0);

/** The interleaved rounds: one row per round, req/s and CPU µs per call per target, ratios to node-floor. */
function interleavedTable(iv: NonNullable<Results['interleaved']>): string[] {
  const targets = [...new Set(iv.rows.map((x) => x.target))];
  const others = targets.filter((t) => t !== 'node-floor');
  const head = `| round | ${targets.map((t) => `${t} req/s · CPU µs`).join(' | ')} | ${others.map((t) => `${t} CPU / req/s vs node-floor`).join(' | ')} |`;
  const lines = [head, `|---|${targets.map(() => '---:').join('|')}|${others.map(() => '---:').join('|')}|`];
  for (let round = 0; round < iv.rounds; round++) {
    const at = (t: string) => iv.rows.find((x) => x.round === round && x.target === t);
    const nf = at('node-floor');
    const cells = targets.map((t) => {
      const x = at(t);
      return x ? `${f0(x.rps)} · ${f0(x.cpuUsPerReq)}${x.errors ? ` (${x.errors} err)` : ''}` : '';
    });
    const ratios = others.map((t) => {
      const x = at(t);
      return x && nf
        ? `${(x.cpuUsPerReq / nf.cpuUsPerReq).toFixed(2)}× / ${(x.rps / nf.rps).toFixed(2)}×`
        : '';
    });
    lines.push(`| ${round + 1} | ${cells.join(' | ')} | ${ratios.join(' | ')} |`);
  }
  return [
    `### Interleaved rounds at c=${iv.concurrency} (the ratio targets use their medians)`,
    '',
    `${iv.rounds} rounds of ${iv.seconds} s per target, the order rotated each round, so each ratio compares windows seconds apart (the table above measures each target once, minutes apart).`,
    '',
    ...lines,
    '',
  ];
}
const ms = (us: number): string => (us / 1000).toFixed(us < 10_000 ? 2 : 1);

/** The c=1 rounds: one row per round, each target's p50 and what it adds to direct's p50 of that round. */
function interleavedC1Table(iv: NonNullable<Results['interleavedC1']>): string[] {
  const targets = [...new Set(iv.rows.map((x) => x.target))];
  const others = targets.filter((t) => t !== 'direct');
  const lines = [
    `| round | ${targets.map((t) => `${t} p50 ms`).join(' | ')} | ${others.map((t) => `${t} adds ms`).join(' | ')} |`,
    `|---|${targets.map(() => '---:').join('|')}|${others.map(() => '---:').join('|')}|`,
  ];
  for (let round = 0; round < iv.rounds; round++) {
    const at = (t: string) => iv.rows.find((x) => x.round === round && x.target === t);
    const direct = at('direct');
    const cells = targets.map((t) => {
      const x = at(t);
      return x ? `${(x.p50us / 1000).toFixed(3)}${x.errors ? ` (${x.errors} err)` : ''}` : '';
    });
    const added = others.map((t) => {
      const x = at(t);
      return x && direct ? ((x.p50us - direct.p50us) / 1000).toFixed(3) : '';
    });
    lines.push(`| ${round + 1} | ${cells.join(' | ')} | ${added.join(' | ')} |`);
  }
  return [
    '### Interleaved rounds at c=1 (the c=1 latency targets use their medians)',
    '',
    `${iv.rounds} rounds of ${iv.seconds} s per target, the order rotated each round; "adds" = the target's p50 minus direct's p50 of the same round.`,
    '',
    ...lines,
    '',
  ];
}

function machineLine(r: Results): string {
  const m = r.machine;
  return `${m.cores} × ${m.cpuModel}, ${m.memGB} GB RAM, ${m.os}, Linux ${m.kernel}, Node ${m.node}; load average ${m.loadavgStart.join(' / ')} at start, ${m.loadavgEnd.join(' / ')} at end; other node/vitest processes running: ${m.otherNodeProcessesAtStart} at start, ${m.otherNodeProcessesAtEnd ?? '?'} at end`;
}

function sharedNote(r: Results): string {
  const busy = r.machine.otherNodeProcessesAtStart > 0 || (r.machine.loadavgStart[0] ?? 0) > 0.5;
  return busy
    ? `**The machine was shared** (other engineers' test runs were active: load average ${r.machine.loadavgStart[0]} at start): absolute numbers are noisy; the ratios are what this bench is for, and the load generator, upstream and proxies all share the same ${r.machine.cores} cores.`
    : `The machine looked idle at start; the load generator, upstream and proxies share the same ${r.machine.cores} cores.`;
}

export function checksTable(r: Results): string {
  const lines = ['| target | measured | result |', '|---|---|---|'];
  for (const c of r.checks)
    lines.push(`| ${c.name} | ${c.value}${c.note ? ` — ${c.note}` : ''} | **${c.status}** |`);
  return lines.join('\n');
}

function loadTable(r: Results, generator: string): string {
  const rows = r.load.filter((x) =>
    generator === 'driver' ? x.generator === 'driver' : x.generator !== 'driver',
  );
  if (rows.length === 0) return '_not run_';
  const direct = (c: number): LoadRow | undefined =>
    rows.find((x) => x.target === 'direct' && x.concurrency === c);
  const lines = [
    '| target | c | req/s | vs direct | p50 ms | p99 ms | p99.9 ms | p50 added ms | CPU µs/req | cores busy | RSS MB | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const x of rows) {
    const d = direct(x.concurrency);
    lines.push(
      `| ${x.target} | ${x.concurrency} | ${f0(x.rps)} | ${d ? `${(x.rps / d.rps).toFixed(2)}×` : ''} | ${ms(x.p50us)} | ${ms(x.p99us)} | ${ms(x.p999us)} | ${d ? ((x.p50us - d.p50us) / 1000).toFixed(2) : ''} | ${f0(x.cpuUsPerReq)} | ${x.cpuCoresBusy.toFixed(2)} | ${f0(x.rssMB)} | ${x.errors} |`,
    );
  }
  return lines.join('\n');
}

function sseTable(r: Results): string {
  const lines = [
    '| target | streams | TTFE p50 ms | TTFE p99 ms | TTFE added (p50) ms | inter-event excess p50 ms | p99 ms | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const x of r.sse) {
    const d = r.sse.find((y) => y.target === 'direct' && y.streams === x.streams);
    lines.push(
      `| ${x.target} | ${x.streams} | ${ms(x.ttfeP50us as number)} | ${ms(x.ttfeP99us as number)} | ${d ? (((x.ttfeP50us as number) - (d.ttfeP50us as number)) / 1000).toFixed(3) : ''} | ${ms(x.gapExcessP50us as number)} | ${ms(x.gapExcessP99us as number)} | ${x.errors} |`,
    );
  }
  return lines.join('\n');
}

export function renderMarkdown(r: Results, svgName: string): string {
  const out: string[] = [];
  out.push(`# aivault bench — ${r.date} (${r.mode})`, '');
  out.push(`Machine: ${machineLine(r)}.`, '', sharedNote(r), '');
  out.push(
    `Versions: ${Object.entries(r.versions)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}. Run took ${r.elapsedS ?? '?'} s.`,
    '',
  );
  if (r.notes.length) out.push(...r.notes.map((n) => `- ${n}`), '');
  if (r.skipped.length) out.push('Skipped:', ...r.skipped.map((s) => `- ${s.target}: ${s.reason}`), '');
  out.push('## Targets', '', checksTable(r), '');
  out.push(`![throughput and latency vs concurrency](${svgName})`, '');
  out.push(
    '## Load: 1 KiB JSON reply, POST, keep-alive (our closed-loop driver for every target)',
    '',
    `Each point: ${r.params.durationMs / 1000} s measured after a warm-up. CPU = utime+stime of the proxy's whole process tree (all threads) over the measured window / requests; for \`direct\` it is the upstream's. "vs direct" = throughput ratio to direct at the same concurrency; "p50 added" = p50 minus direct's p50. aivaultd is driven through its unix-socket msgpack client (min(c,16) multiplexed connections).`,
    '',
    loadTable(r, 'driver'),
    '',
    '### Cross-check with wrk (HTTP targets only)',
    '',
    loadTable(r, 'wrk'),
    '',
  );
  if (r.interleaved) out.push(...interleavedTable(r.interleaved));
  if (r.interleavedC1) out.push(...interleavedC1Table(r.interleavedC1));
  if (r.crypto) {
    out.push(
      `Crypto worker utilisation (event-loop busy share over the window, from the \`status\` frame): ${(r.crypto.utilisation * 100).toFixed(1)}% at ${f0(r.crypto.rps)} req/s (w${r.crypto.workers}, c=${r.crypto.concurrency}). Per point: ${r.load
        .filter((x) => x.cryptoElu !== undefined)
        .map((x) => `${x.target} c=${x.concurrency}: ${((x.cryptoElu as number) * 100).toFixed(1)}%`)
        .join('; ')}.`,
      '',
    );
  }
  out.push(
    '## Streaming',
    '',
    `SSE: ${r.params.sseEvents} events ${r.params.sseInterval} ms apart, the first one at once, after an untimed warm-up round of one-event streams (connections open, JIT warm). 1 stream: 20 sequential timed streams; 32 streams: 3 rounds. TTFE = request start → first event; inter-event excess = |gap − interval|.`,
    '',
    sseTable(r),
    '',
  );
  out.push('Large streamed body:', '', '| target | MB/s | MB | errors |', '|---|---:|---:|---:|');
  for (const x of r.large)
    out.push(
      `| ${x.target} | ${f0(x.mbPerSec as number)} | ${f0((x.bytes as number) / 1048576)} | ${x.errors} |`,
    );
  out.push(
    '',
    `${r.params.openStreams} concurrent open SSE streams (ramped over 1 s):`,
    '',
    '| target | opened | RSS idle MB | RSS max MB | delivery delay p50 ms | p99 ms | CPU ms | errors |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const x of r.openStreams)
    out.push(
      `| ${x.target} | ${x.opened}/${x.streams} | ${f0(x.rssIdleMB as number)} | ${f0(x.rssMaxMB as number)} | ${x.deliveryDelayP50ms} | ${x.deliveryDelayP99ms} | ${f0(x.cpuMs as number)} | ${x.errors} |`,
    );
  if (r.stability) {
    const s = r.stability;
    out.push(
      '',
      `## Stability`,
      '',
      `${s.target}, c=${s.concurrency}, ${s.seconds} s: ${f0(s.rps)} req/s, ${s.errors} errors; RSS ${s.rssEarlyMB.toFixed(1)} MB (2nd quarter avg) → ${s.rssLateMB.toFixed(1)} MB (last quarter avg). Samples (1/s): ${s.rssSamplesMB.join(', ')}`,
    );
  }
  if (r.cli) {
    out.push(
      '',
      '## CLI wall time',
      '',
      `Tool: ${r.cli.tool}, ${r.cli.runs} runs each${r.cli.invokeRatioRounds ? ` in ${r.cli.invokeRatioRounds.length} rounds alternating the command order` : ''}; \`aivault invoke\` talks to an already running aivaultd; curl goes straight to the upstream (TLS handshake included).`,
      '',
      '| command | median ms | mean ms | ratio to node -e 0 |',
      '|---|---:|---:|---:|',
    );
    const base = r.cli.medianMs['node -e 0'] ?? 1;
    for (const [k, v] of Object.entries(r.cli.medianMs))
      out.push(
        `| ${k} | ${v.toFixed(1)} | ${(r.cli.meanMs[k] ?? 0).toFixed(1)} | ${(v / base).toFixed(2)}× |`,
      );
  }
  if (r.micro) {
    out.push(
      '',
      '## Micro-benchmarks (tinybench, same run)',
      '',
      '| bench | ops/s | µs/op | p99 µs | vs baseline | note |',
      '|---|---:|---:|---:|---:|---|',
    );
    for (const m of r.micro)
      out.push(
        `| ${m.name} | ${f0(m.opsPerSec)} | ${m.usPerOp.toFixed(3)} | ${m.p99us !== undefined ? m.p99us.toFixed(2) : ''} | ${m.ratio !== undefined ? `${m.ratio.toFixed(2)}× ${m.baseline ?? ''}` : ''} | ${m.note ?? ''} |`,
      );
  }
  out.push('');
  return out.join('\n');
}

/** The block the README quotes. */
export function renderLatest(r: Results, base: string): string {
  const get = (t: string, c: number): LoadRow | undefined =>
    r.load.find((x) => x.target === t && x.concurrency === c && x.generator === 'driver');
  const targets = [...new Set(r.load.filter((x) => x.generator === 'driver').map((x) => x.target))];
  const lines = [
    `# Latest bench (${r.mode}, ${r.date.slice(0, 10)})`,
    '',
    `<!-- generated by \`npm run bench\`; full report: ${base}.md, data: ${base}.json, chart: ${base}.svg -->`,
    '',
    `Machine: ${machineLine(r)}. ${sharedNote(r)}`,
    '',
    `Same run, same load generator, 1 KiB JSON via a local HTTPS upstream: req/s (p50 / p99 ms) per concurrency.`,
    '',
    `| target | ${r.params.conc.map((c) => `c=${c}`).join(' | ')} | CPU µs/req @64 |`,
    `|---|${r.params.conc.map(() => '---:').join('|')}|---:|`,
  ];
  for (const t of targets) {
    lines.push(
      `| ${t} | ${r.params.conc
        .map((c) => {
          const x = get(t, c);
          return x ? `${f0(x.rps)} (${ms(x.p50us)} / ${ms(x.p99us)})` : '';
        })
        .join(' | ')} | ${get(t, 64) ? f0((get(t, 64) as LoadRow).cpuUsPerReq) : ''} |`,
    );
  }
  lines.push('', checksTable(r), '');
  if (r.skipped.length) lines.push(...r.skipped.map((s) => `- skipped ${s.target}: ${s.reason}`), '');
  lines.push(`![throughput and latency vs concurrency](${base}.svg)`, '');
  return lines.join('\n');
}

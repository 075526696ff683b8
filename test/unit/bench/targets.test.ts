// The bench's targets (issue 12) from a run's figures: each PASS/MISS at its threshold, the ratio printed,
// N/A when a figure was not measured. And the load guard's refusal rule.
import { describe, expect, it } from 'vitest';
import { checkLoad } from '../../../bench/load-guard.js';
import { LIMITS, evaluateTargets, formatTargets } from '../../../bench/targets.js';
import type { LoadRow, Results, TargetCheck } from '../../../bench/support/report.js';

function row(target: string, concurrency: number, over: Partial<LoadRow>): LoadRow {
  return {
    target,
    concurrency,
    generator: 'driver',
    requests: 1000,
    errors: 0,
    durationMs: 1000,
    rps: 1000,
    p50us: 1000,
    p99us: 2000,
    p999us: 3000,
    meanUs: 1000,
    cpuUsPerReq: 100,
    cpuCoresBusy: 1,
    rssMB: 50,
    ...over,
  } as LoadRow;
}

/** A run where aivaultd sits exactly at every threshold (all PASS), with `tweak` applied. */
function run(tweak: (r: Results) => void = () => undefined): Results {
  const r = {
    date: '2026-12-05T00:00:00Z',
    mode: 'full',
    params: { openStreams: 1000 },
    machine: { cores: 2 },
    load: [
      row('direct', 1, { p50us: 1000 }),
      row('node-floor', 64, { rps: 6000, cpuUsPerReq: 150 }),
      row('nginx', 64, { rps: 12000, cpuUsPerReq: 40 }),
      ...['aivaultd-http-passthrough', 'aivaultd-w2'].flatMap((t) => [
        row(t, 1, { p50us: 1300 }),
        row(t, 64, { rps: 6000, cpuUsPerReq: 75 }),
      ]),
    ],
    sse: [1, 32].flatMap((streams) =>
      ['direct', 'aivaultd-http-passthrough', 'aivaultd-w2'].map((target) => ({
        target,
        streams,
        ttfeP50us: target === 'direct' ? 2000 : 2000 + (streams === 1 ? 500 : 3000),
      })),
    ),
    openStreams: [{ target: 'aivaultd-w2', streams: 1000, opened: 1000, errors: 0, rssMaxMB: 150 }],
    idle: { target: 'aivaultd-w2', rssMB: 120 },
    crypto: { workers: 2, concurrency: 64, utilisation: 0.05, rps: 6000 },
    cli: {
      tool: 'x',
      runs: 20,
      medianMs: { 'node -e 0': 40, 'aivault invoke': 52 },
      meanMs: {},
      stddevMs: {},
    },
    stability: {
      target: 'aivaultd-w2',
      concurrency: 64,
      seconds: 60,
      rps: 6000,
      errors: 0,
      rssSamplesMB: [],
      rssEarlyMB: 100,
      rssLateMB: 105,
      growthMB: 5,
    },
    micro: undefined,
    large: [],
    versions: {},
    checks: [],
    skipped: [],
    notes: [],
  } as unknown as Results;
  tweak(r);
  return r;
}

const find = (checks: TargetCheck[], part: string): TargetCheck[] =>
  checks.filter((c) => c.name.includes(part));

describe('evaluateTargets', () => {
  it('every target PASSes at its threshold, each per-path target on both paths', () => {
    const checks = evaluateTargets(run());
    expect(checks.filter((c) => c.status !== 'PASS')).toEqual([]);
    for (const part of ['CPU µs/request at c=64 ≤ 1×', 'c=64 req/s ≥ 1×', 'p50 added', 'SSE first event']) {
      const c = find(checks, part);
      expect(c.some((x) => x.name.includes('(passthrough)'))).toBe(true);
      expect(c.some((x) => x.name.includes('(unix socket)'))).toBe(true);
    }
  });

  it('prints the ratio against the same run’s baseline', () => {
    const checks = evaluateTargets(run());
    expect(find(checks, 'CPU µs/request at c=64 ≤ 1×')[0]?.value).toBe('75 vs 150 µs = 0.50×');
    expect(find(checks, 'req/s ≥ 1×')[0]?.value).toBe('6000 vs 6000 req/s = 1.00×');
    expect(find(checks, 'aivault invoke')[0]?.value).toBe('52.0 vs 40.0 ms = 1.30×');
  });

  it.each<[string, string | string[], (r: Results) => void]>([
    [
      'CPU over node-floor (passthrough)',
      [
        'CPU µs/request at c=64 ≤ 1× node-floor (passthrough)',
        'stretch: CPU µs/request at c=64 ≤ 0.5× node-floor (passthrough)',
      ],
      (r) => {
        r.load.find((x) => x.target === 'aivaultd-http-passthrough' && x.concurrency === 64)!.cpuUsPerReq =
          151;
      },
    ],
    [
      'throughput under node-floor (socket)',
      [
        'c=64 req/s ≥ 1× node-floor, 2 workers (unix socket)',
        'stretch: c=64 req/s ≥ 0.5× nginx (unix socket)',
      ],
      (r) => {
        r.load.find((x) => x.target === 'aivaultd-w2' && x.concurrency === 64)!.rps = 5999;
      },
    ],
    [
      'p50 added 0.301 ms',
      'p50 added at c=1 ≤ 0.3 ms (unix socket)',
      (r) => {
        r.load.find((x) => x.target === 'aivaultd-w2' && x.concurrency === 1)!.p50us = 1301;
      },
    ],
    [
      'SSE 1 stream +0.501 ms',
      'SSE first event added ≤ 0.5 ms, 1 stream (passthrough)',
      (r) => {
        r.sse.find((x) => x.target === 'aivaultd-http-passthrough' && x.streams === 1)!.ttfeP50us = 2501;
      },
    ],
    [
      'SSE 32 streams +3.001 ms',
      'SSE first event added ≤ 3 ms, 32 streams (unix socket)',
      (r) => {
        r.sse.find((x) => x.target === 'aivaultd-w2' && x.streams === 32)!.ttfeP50us = 5001;
      },
    ],
    [
      'invoke 1.31×',
      '`aivault invoke` wall ≤ 1.3× `node -e 0`',
      (r) => {
        r.cli!.medianMs['aivault invoke'] = 52.4;
      },
    ],
    [
      'RSS at 1,000 streams',
      'daemon RSS ≤ 150 MB with 1000 open streams',
      (r) => {
        r.openStreams[0]!.rssMaxMB = 151;
      },
    ],
    [
      'not every stream opened',
      'daemon RSS ≤ 150 MB with 1000 open streams',
      (r) => {
        r.openStreams[0]!.opened = 999;
      },
    ],
    [
      'idle RSS',
      'daemon RSS ≤ 120 MB idle',
      (r) => {
        r.idle = { target: 'aivaultd-w2', rssMB: 121 };
      },
    ],
    [
      'crypto busy',
      'crypto worker utilisation < 10% at c=64',
      (r) => {
        r.crypto!.utilisation = 0.1;
      },
    ],
  ])('%s → MISS', (_why, name, tweak) => {
    const checks = evaluateTargets(run(tweak));
    const missed = checks.filter((c) => c.status === 'MISS').map((c) => c.name);
    expect(missed).toEqual(Array.isArray(name) ? name : [name]);
  });

  it('the c=64 ratios come from the median of the interleaved rounds when that section ran', () => {
    // Single windows say 0.5× CPU / 1.0× req/s (PASS); the rounds say otherwise, and they decide.
    const checks = evaluateTargets(
      run((r) => {
        const rows: NonNullable<Results['interleaved']>['rows'] = [];
        const perRound = [
          [100, 150, 1000, 800], // node-floor cpu, aivaultd cpu, node-floor rps, aivaultd rps
          [120, 150, 1000, 900],
          [80, 160, 1000, 700],
        ];
        perRound.forEach(([nfCpu, aCpu, nfRps, aRps], round) => {
          rows.push({ round, target: 'node-floor', cpuUsPerReq: nfCpu!, rps: nfRps!, errors: 0 });
          rows.push({ round, target: 'aivaultd-w2', cpuUsPerReq: aCpu!, rps: aRps!, errors: 0 });
        });
        // A round with errors does not count.
        rows.push({ round: 3, target: 'node-floor', cpuUsPerReq: 100, rps: 1000, errors: 0 });
        rows.push({ round: 3, target: 'aivaultd-w2', cpuUsPerReq: 10, rps: 9000, errors: 5 });
        r.interleaved = { concurrency: 64, rounds: 4, seconds: 2, rows };
      }),
    );
    const cpu = find(checks, 'CPU µs/request at c=64 ≤ 1× node-floor (unix socket)')[0];
    // ratios 1.5, 1.25, 2.0 → median 1.5
    expect(cpu?.status).toBe('MISS');
    expect(cpu?.value).toBe(
      '1.50× (median of 3 alternating rounds, 1.25×–2.00×); one window each: 75 vs 150 µs = 0.50×',
    );
    const rps = find(checks, 'c=64 req/s ≥ 1× node-floor, 2 workers (unix socket)')[0];
    expect(rps?.status).toBe('MISS');
    expect(rps?.value).toMatch(/^0\.80× \(median of 3 alternating rounds, 0\.70×–0\.90×\)/);
    // The passthrough was not in the rounds: its single-window ratio still decides.
    expect(find(checks, 'CPU µs/request at c=64 ≤ 1× node-floor (passthrough)')[0]?.value).toBe(
      '75 vs 150 µs = 0.50×',
    );
  });

  it('the c=1 latency targets come from the median of the interleaved c=1 rounds when they ran', () => {
    // The single window says 0.300 ms added (PASS at ≤ 0.3 ms); the rounds say otherwise, and they decide.
    const checks = evaluateTargets(
      run((r) => {
        const rows: NonNullable<Results['interleavedC1']>['rows'] = [];
        const perRound = [
          [300, 800, 700], // direct, node-floor, aivaultd-w2 p50 µs
          [320, 700, 900],
          [310, 900, 710],
        ];
        perRound.forEach(([d, nf, a], round) => {
          rows.push({ round, target: 'direct', p50us: d!, errors: 0 });
          rows.push({ round, target: 'node-floor', p50us: nf!, errors: 0 });
          rows.push({ round, target: 'aivaultd-w2', p50us: a!, errors: 0 });
        });
        // A round with errors does not count.
        rows.push({ round: 3, target: 'direct', p50us: 300, errors: 0 });
        rows.push({ round: 3, target: 'aivaultd-w2', p50us: 310, errors: 2 });
        r.interleavedC1 = { rounds: 4, seconds: 2, rows };
      }),
    );
    const c1 = find(checks, 'p50 added at c=1 ≤ 0.3 ms (unix socket)')[0];
    // added 400, 580, 400 → median 400 µs; node-floor adds 500, 380, 590 → median 500 µs
    expect(c1?.status).toBe('MISS');
    expect(c1?.value).toBe(
      '0.400 ms (median of 3 alternating rounds, 0.400 ms–0.580 ms); one window: 0.300 ms (p50 1.300 ms vs direct 1.000 ms); node-floor adds 0.500 ms',
    );
    // The passthrough was not in the rounds: its single window still decides.
    expect(find(checks, 'p50 added at c=1 ≤ 0.3 ms (passthrough)')[0]?.value).toBe(
      '0.300 ms (p50 1.300 ms vs direct 1.000 ms)',
    );
  });

  it('latency rows say what node-floor adds in the same run when it was measured', () => {
    const plain = evaluateTargets(run());
    expect(find(plain, 'p50 added at c=1')[0]?.value).toBe('0.300 ms (p50 1.300 ms vs direct 1.000 ms)');
    const checks = evaluateTargets(
      run((r) => {
        r.load.push(row('node-floor', 1, { p50us: 1450 }));
        r.sse.push({ target: 'node-floor', streams: 1, ttfeP50us: 2900 } as Results['sse'][number]);
      }),
    );
    const c1 = find(checks, 'p50 added at c=1 ≤ 0.3 ms (unix socket)')[0];
    expect(c1?.status).toBe('PASS');
    expect(c1?.value).toBe('0.300 ms (p50 1.300 ms vs direct 1.000 ms); node-floor adds 0.450 ms');
    expect(find(checks, 'SSE first event added ≤ 0.5 ms, 1 stream (unix socket)')[0]?.value).toBe(
      '0.500 ms (p50 2.500 ms vs direct 2.000 ms); node-floor adds 0.900 ms',
    );
    // Not measured for 32 streams: nothing added to that row.
    expect(find(checks, 'SSE first event added ≤ 3 ms, 32 streams (unix socket)')[0]?.value).not.toContain(
      'node-floor',
    );
  });

  it('the invoke ratio is the median of the alternating CLI rounds when they were recorded', () => {
    // Pooled medians say 52 / 40 = 1.30× (PASS); the per-round ratios say 1.35× and decide.
    const checks = evaluateTargets(
      run((r) => {
        r.cli!.invokeRatioRounds = [1.2, 1.35, 1.4];
      }),
    );
    const inv = find(checks, 'aivault invoke')[0];
    expect(inv?.status).toBe('MISS');
    expect(inv?.value).toBe(
      '1.35× (median of 3 alternating rounds, 1.20×–1.40×); all runs pooled: 52.0 vs 40.0 ms = 1.30×',
    );
  });

  it('stretch goals are their own lines: 0.51× node-floor CPU passes the target, misses the stretch', () => {
    const checks = evaluateTargets(
      run((r) => {
        r.load.find((x) => x.target === 'aivaultd-w2' && x.concurrency === 64)!.cpuUsPerReq = 77;
      }),
    );
    expect(checks.filter((c) => c.status === 'MISS').map((c) => c.name)).toEqual([
      `stretch: CPU µs/request at c=64 ≤ ${LIMITS.cpuVsNodeFloorStretch}× node-floor (unix socket)`,
    ]);
  });

  it('a figure not measured in this run is N/A, never PASS', () => {
    const checks = evaluateTargets(
      run((r) => {
        r.load = r.load.filter((x) => x.target !== 'aivaultd-http-passthrough' && x.target !== 'nginx');
        r.cli = undefined;
        delete r.idle;
      }),
    );
    const na = checks.filter((c) => c.status === 'N/A').map((c) => c.name);
    expect(na).toContain('CPU µs/request at c=64 ≤ 1× node-floor (passthrough)');
    expect(na).toContain('stretch: c=64 req/s ≥ 0.5× nginx (unix socket)');
    expect(na).toContain('`aivault invoke` wall ≤ 1.3× `node -e 0`');
    expect(na).toContain('daemon RSS ≤ 120 MB idle');
    expect(checks.filter((c) => c.status === 'MISS')).toEqual([]);
  });

  it('formatTargets prints a summary and one PASS/MISS line per target', () => {
    const text = formatTargets(evaluateTargets(run((r) => void (r.idle = { target: 'x', rssMB: 200 }))));
    expect(text.split('\n')[0]).toMatch(/^targets: \d+ PASS, 1 MISS, 0 N\/A$/);
    expect(text).toContain('  MISS  daemon RSS ≤ 120 MB idle: 200 MB');
  });
});

describe('load guard', () => {
  it('measures at or under half the cores', () => {
    expect(checkLoad(1.0, 2, false)).toEqual({ ok: true });
    expect(checkLoad(0.2, 2, false)).toEqual({ ok: true });
  });

  it('refuses above half the cores, naming the load and how to override', () => {
    const v = checkLoad(1.01, 2, false);
    expect(v.ok).toBe(false);
    expect(!v.ok && v.message).toMatch(/load average 1\.01 is above 1\.00 .*--shared-ok/);
  });

  it('--shared-ok measures anyway and leaves a note for the report', () => {
    const v = checkLoad(9.7, 2, true);
    expect(v).toMatchObject({ ok: true, note: expect.stringContaining('busy machine') });
  });
});

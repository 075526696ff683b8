/**
 * Fleet admission cost per call (issue 18): the local SharedArrayBuffer table (src/core/threads/rate-limit.ts,
 * what every aivaultd uses without a fleet) against the shared Redis window (src/stores/fleet/redis-admission.ts)
 * on a throwaway loopback redis-server. Redis is measured one call at a time (latency: what one call
 * waits) and with 64 calls in flight (throughput of one request worker's connection), each both admitted
 * (limit never reached) and refused (limit used up: the script also reads the oldest entry).
 * Loopback is the best case: on a network each Redis call adds the round trip.
 *
 * Run alone (`node --import tsx bench/fleet.ts [--quick]`) or by bench/run.ts (`--only fleet`). Prints the
 * rows as one JSON array line on stdout (the micro-benchmark row shape), human lines on stderr.
 */
import { Bench } from 'tinybench';
import { RateLimiter, createRateLimitBuffer } from '../src/core/threads/rate-limit.js';
import { RedisAdmission } from '../src/stores/fleet/redis-admission.js';
import { haveRedis, startRedis } from '../test/support/fleet-servers.js';
import type { MicroRow } from './support/report.js';

const QUICK = process.argv.includes('--quick');
const TIME = QUICK ? 300 : 1500;
const HUGE = 4_000_000_000;

type Row = MicroRow;
const rows: Row[] = [];
const BASE = 'fleet admit: local SharedArrayBuffer (no fleet)';

function push(row: Row): void {
  rows.push(row);
  process.stderr.write(
    `${row.name.padEnd(56)} ${Math.round(row.opsPerSec).toLocaleString('en-US').padStart(12)} ops/s  ${row.usPerOp.toFixed(2)} µs/op${row.p99us !== undefined ? `  p99 ${row.p99us.toFixed(1)} µs` : ''}\n`,
  );
}

if (!haveRedis()) {
  process.stderr.write('bench/fleet.ts: redis-server is not installed (scripts/setup-test-env.sh)\n');
  process.exit(2);
}

const redis = await startRedis();
const admission = new RedisAdmission({ url: redis.url, fleetId: 'bench', failOpen: false, warn: () => {} });
try {
  // Connected before measuring (the first call waits for the connection).
  await admission.tryAcquire('bench/warm', HUGE);
  const local = new RateLimiter(createRateLimitBuffer());
  // Fill the refused window once (limit 600, as in "OpenAI: 600 calls/minute").
  for (let i = 0; i < 600; i++) await admission.tryAcquire('bench/full', 600);

  const bench = new Bench({ time: TIME, warmupTime: QUICK ? 50 : 200 });
  bench.add(BASE, () => local.tryAcquire('bench/cap', HUGE));
  bench.add('fleet admit: Redis, admitted, 1 in flight', () => admission.tryAcquire('bench/cap', HUGE));
  bench.add('fleet admit: Redis, refused, 1 in flight', () => admission.tryAcquire('bench/full', 600));
  await bench.warmup();
  await bench.run();
  const base = bench.tasks.find((t) => t.name === BASE)?.result;
  for (const t of bench.tasks) {
    const r = t.result;
    if (!r || r.error) continue;
    push({
      name: t.name,
      opsPerSec: r.hz,
      usPerOp: r.mean * 1000,
      p99us: r.p99 * 1000,
      ...(base && t.name !== BASE ? { baseline: BASE, ratio: r.mean / base.mean } : {}),
    });
  }

  // Throughput with 64 calls in flight on one connection (ioredis pipelines them).
  for (const [label, cap, limit] of [
    ['admitted', 'bench/many', HUGE],
    ['refused', 'bench/full', 600],
  ] as const) {
    const total = QUICK ? 20_000 : 100_000;
    const t0 = process.hrtime.bigint();
    let done = 0;
    const worker = async (): Promise<void> => {
      while (done < total) {
        done++;
        await admission.tryAcquire(cap, limit);
      }
    };
    await Promise.all(Array.from({ length: 64 }, worker));
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    const localUs = base ? base.mean * 1000 : undefined;
    push({
      name: `fleet admit: Redis, ${label}, 64 in flight`,
      opsPerSec: total / secs,
      usPerOp: (secs * 1e6) / total,
      ...(localUs ? { baseline: BASE, ratio: (secs * 1e6) / total / localUs } : {}),
      note: 'µs/op = wall time / calls (throughput of one connection)',
    });
  }
} finally {
  await admission.close();
  await redis.stop();
}

process.stdout.write(`${JSON.stringify(rows)}\n`);
process.exit(0);

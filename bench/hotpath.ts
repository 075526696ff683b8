/**
 * CPU cost per call of the request-worker hot-path pieces changed in bench/PROFILE.md, measured as
 * process CPU time (utime+stime of ALL threads, libuv's pool included) over N calls, so an async fs call
 * that is cheap on the JS thread but costs a thread-pool round trip is counted in full.
 *
 *   node --import tsx bench/hotpath.ts catalog [N]   createCatalogCache()() on an unchanged catalog
 *   node --import tsx bench/hotpath.ts audit [N]     AuditLog.append of a typical invoke event
 *
 * Prints one JSON line per round (5 rounds) and the median on stderr. Uses a throwaway dev vault.
 */
import { useBenchVault } from './support/bench-vault.js';

const what = process.argv[2] ?? 'catalog';
const N = Number(process.argv[3] ?? 5000);

useBenchVault('hotpath');

const { loadConfig } = await import('../src/core/config/env.js');
const { vaultPaths } = await import('../src/stores/vault/index.js');
const { registry } = await import('../src/core/registry/index.js');
const { createCatalogCache } = await import('../src/stores/catalog/cache.js');
const { AuditLog } = await import('../src/stores/audit/audit-log.js');

const config = loadConfig(process.env);
const paths = vaultPaths(config);

async function round(fn: () => Promise<unknown>): Promise<{ cpuUs: number; wallUs: number }> {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) await fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1000;
  const c = process.cpuUsage(c0);
  return { cpuUs: (c.user + c.system) / N, wallUs: wall / N };
}

let fn: () => Promise<unknown>;
let close: () => Promise<void> = async () => {};
if (what === 'catalog') {
  const snap = createCatalogCache(paths, registry);
  await snap();
  fn = snap;
} else if (what === 'audit') {
  // keepOpen is what the daemon's pipeline uses (an unknown option is ignored by older AuditLogs).
  const log = new AuditLog(
    config,
    paths,
    ...([{ keepOpen: !process.argv.includes('--once') }] as unknown as []),
  ) as InstanceType<typeof AuditLog> & { close?: () => Promise<void> };
  const ev = {
    kind: 'invoke',
    capability: 'openai/chat',
    credential: 'openai',
    host: 'api.openai.com',
    method: 'POST',
    path: '/v1/chat/completions',
    status: 200,
    durationMs: 12,
  };
  fn = () => log.append(ev);
  close = async () => log.close?.();
} else {
  throw new Error(`unknown: ${what}`);
}

await round(fn); // warm-up
const rows: { cpuUs: number; wallUs: number }[] = [];
for (let r = 0; r < 5; r++) {
  const row = await round(fn);
  rows.push(row);
  process.stdout.write(`${JSON.stringify({ what, n: N, ...row })}\n`);
}
await close();
const med = (k: 'cpuUs' | 'wallUs'): number => rows.map((r) => r[k]).sort((a, b) => a - b)[2] as number;
process.stderr.write(
  `${what}: median CPU ${med('cpuUs').toFixed(1)} µs/call, wall ${med('wallUs').toFixed(1)} µs/call (N=${N})\n`,
);

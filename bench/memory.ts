/**
 * aivaultd memory, per thread and per kind of mapping (issue 12 item 5): starts the compiled daemon
 * (dist/, after `npm run build`) like `npm run bench` does (2 request workers, the same warm-up calls),
 * waits 1 s and reads its RSS (/proc/<pid>/status, smaps_rollup), the biggest anonymous mappings, and, with
 * `--streams N`, the RSS maximum while N SSE streams are open over the unix socket (the bench's `open`
 * section, through bench/support/driver.ts). Light enough for a shared machine (one daemon, no load).
 *
 *   node --import tsx bench/memory.ts [--root DIR] [--workers 2] [--streams 0] [--events 4]
 *     [--node-flags "--max-semi-space-size=1"] [--env K=V,K=V] [--rounds 1] [--settle 1] [--load 0] [--h2]
 *
 * --settle: seconds between the warm-up (and --load) and the idle reading (the bench: 1).
 * --load: seconds of c=64 socket calls (16 connections) before the idle reading: what a daemon holds after
 * a burst, e.g. `--load 20 --settle 10` for the memory it keeps once quiet (src/core/threads/idle-release.ts).
 * --h2: the upstream speaks HTTP/2 too (bench/support/upstream.ts --h2), so streams are multiplexed.
 * --root: the checkout whose dist/ is started (A/B two builds). --rounds: start the daemon this many
 * times and print every reading (RSS is noisy to ±3 MB between starts).
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { connect } from '../src/core/protocol/client.js';
import type { DriverConfig } from './support/driver.js';
import { startDevUpstream, waitLine } from './support/dev-upstream.js';

const HERE = resolve(import.meta.dirname, '..');
const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] as string) : def;
};
const ROOT = resolve(arg('root', HERE));
const WORKERS = Number(arg('workers', '2'));
const STREAMS = Number(arg('streams', '0'));
const EVENTS = Number(arg('events', '4'));
const ROUNDS = Number(arg('rounds', '1'));
const SETTLE_MS = Number(arg('settle', '1')) * 1000;
/** Seconds of c=64 socket load before the idle reading (what a daemon holds after the bench's load sections). */
const LOAD_S = Number(arg('load', '0'));
const NODE_FLAGS = arg('node-flags', '').split(' ').filter(Boolean);
const EXTRA_ENV = Object.fromEntries(
  arg('env', '')
    .split(',')
    .filter(Boolean)
    .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
);

/** `Key: N kB` fields of a /proc file, in MB. */
function kbFields(path: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^(\w+):\s+(\d+) kB/.exec(line);
    if (m) out[m[1] as string] = Number(m[2]) / 1024;
  }
  return out;
}

/** Resident MB per kind of mapping: anonymous (heaps, stacks, malloc arenas) vs each file. */
function byMapping(pid: number): [string, number][] {
  const sums = new Map<string, number>();
  let name = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      name = head[1] || '[anon]';
      continue;
    }
    const m = /^Rss:\s+(\d+) kB/.exec(line);
    if (m) sums.set(name, (sums.get(name) ?? 0) + Number(m[1]) / 1024);
  }
  return [...sums].sort((a, b) => b[1] - a[1]).slice(0, 8);
}

const rssMB = (pid: number): number => kbFields(`/proc/${pid}/status`).VmRSS ?? 0;

const {
  work,
  upstream: up,
  env,
} = await startDevUpstream('mem', process.argv.includes('--h2') ? ['--h2'] : []);

try {
  for (let round = 0; round < ROUNDS; round++) {
    const socketPath = join(work, `d${round}.sock`);
    const daemon = spawn(
      process.execPath,
      [
        ...NODE_FLAGS,
        join(ROOT, 'dist', 'src', 'front', 'main.js'),
        '--socket',
        socketPath,
        '--workers',
        String(WORKERS),
      ],
      { env: { ...env, ...EXTRA_ENV }, stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT },
    );
    try {
      await waitLine(daemon, /listening on/);
      const pid = daemon.pid as number;
      const started = rssMB(pid);
      // The bench's warm-up (bench/run.ts startDaemon): workers × 4 rounds of workers × 2 calls.
      const c = await connect({ socketPath });
      for (let i = 0; i < WORKERS * 4; i++) {
        await Promise.all(
          Array.from({ length: WORKERS * 2 }, () =>
            c.invoke({
              capability: 'openai/chat-completions',
              request: { method: 'POST', path: '/v1/chat/completions', body: '{}' },
            }),
          ),
        );
      }
      if (LOAD_S > 0) {
        const until = performance.now() + LOAD_S * 1000;
        const clients = await Promise.all(Array.from({ length: 16 }, () => connect({ socketPath })));
        let rr = 0;
        await Promise.all(
          Array.from({ length: 64 }, async () => {
            while (performance.now() < until) {
              await (clients[rr++ % clients.length] as typeof c)
                .invoke({
                  capability: 'openai/chat-completions',
                  request: { method: 'POST', path: '/v1/chat/completions', body: '{}' },
                })
                .catch(() => undefined);
            }
          }),
        );
        for (const x of clients) x.close();
      }
      c.close();
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      const roll = kbFields(`/proc/${pid}/smaps_rollup`);
      const out: Record<string, unknown> = {
        round,
        pid,
        startedMB: +started.toFixed(1),
        idleMB: +rssMB(pid).toFixed(1),
        anonMB: +(roll.Anonymous ?? 0).toFixed(1),
        fileMB: +((roll.Rss ?? 0) - (roll.Anonymous ?? 0)).toFixed(1),
        threads: Number(/Threads:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]),
        top: byMapping(pid).map(([n, mb]) => `${n.split('/').pop()} ${mb.toFixed(1)}`),
      };
      if (STREAMS > 0) {
        const cfg: DriverConfig = {
          mode: 'sse',
          target: { kind: 'socket', socketPath, capability: 'openai/chat-completions' },
          pids: [pid],
          path: `/v1/chat/completions/sse?n=${EVENTS}&interval=1000`,
          streams: STREAMS,
          events: EVENTS,
          intervalMs: 1000,
          rampMs: 1000,
        };
        const r = spawnSync(
          process.execPath,
          ['--import', 'tsx', join(HERE, 'bench', 'support', 'driver.ts'), JSON.stringify(cfg)],
          { cwd: HERE, encoding: 'utf8' },
        );
        const line = r.stdout.trim().split('\n').at(-1) ?? '';
        const res = JSON.parse(line) as Record<string, number>;
        out.streams = `${res.opened}/${res.streams} opened, ${res.errors} errors`;
        out.streamsMaxMB = +(res.rssMaxMB as number).toFixed(1);
        out.streamsCpuMs = Math.round(res.cpuMs as number);
        out.afterStreamsMB = +rssMB(pid).toFixed(1);
      }
      console.log(JSON.stringify(out));
    } finally {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon.once('exit', r));
    }
  }
} finally {
  up.kill('SIGTERM');
}

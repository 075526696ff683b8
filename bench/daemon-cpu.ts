/**
 * aivaultd CPU per request, split into the main thread and everything else (request workers, crypto
 * worker, libuv pool, GC threads), from /proc/<pid>/task/<tid>/stat over each measured round. CPU time is
 * far less sensitive to other load on a shared machine than req/s or latency.
 *
 *   node --import tsx bench/daemon-cpu.ts [--root DIR] [--workers 2] [--c 16] [--n 3000] [--rounds 5]
 *     [--route socket|v|proxy] [--tokens N] [--cpu-prof DIR] [--dist] [--strace FILE] [--node-flags "FLAGS"] [--daemon-log FILE]
 *
 * Per round it prints CPU per call (main thread, all threads), req/s, the p50 wall time of a call as this
 * client saw it, and on `/v/` the p50 of the daemon's own Server-Timing `total` (receipt to last byte, without
 * the client's side: the steadier figure for A/B pairs at c=1).
 * --route: `socket` (default) drives the unix-socket msgpack protocol; `v` drives the loopback HTTP
 * listener's `/v/openai/…` passthrough with a proxy token (undici, keep-alive, c connections); `proxy` drives
 * the HTTPS proxy (`--https-proxy`: undici ProxyAgent, CONNECT + TLS to the vault CA's leaf, c tunnels) to
 * `https://api.openai.com/…`, which the dev vault resolves to the bench upstream.
 * --tokens: mint N − 1 more proxy tokens first (a vault serving many agents: per-request token checks must
 * not grow with the number of tokens).
 * --dist: start ROOT's compiled daemon (dist/, after `npm run build` there) instead of the sources under
 * tsx: production code, and profiles without the loader's noise.
 * --cpu-prof: also run the daemon under `node --cpu-prof` (one .cpuprofile per thread into DIR; the main
 * thread's file is the one with thread id 0 in its name: CPU.<date>.<pid>.0.<seq>.cpuprofile).
 * --strace: attach `strace -c -f` to the daemon over the measured rounds only (not the warm-up) and print
 * the syscalls per request (FILE keeps strace's table). strace's own overhead inflates the CPU figures of
 * that run: use it for counts, not for µs.
 * --daemon-log: the daemon's stdout and stderr into FILE, e.g. with `--node-flags "--trace-gc-nvp"` (V8 prints
 * its GC trace on the process's stdout, one line per collection, isolates told apart by address).
 * --root: the checkout whose src/front/main.ts is started (source mode under tsx, so two checkouts — e.g.
 * a `git worktree` of the previous commit — can be compared without building either). The upstream is
 * bench/support/upstream.ts (own process); the load comes from this process (aivault `connect()`).
 */
import { spawn } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Pool, ProxyAgent, request } from 'undici';
import { connect, type DaemonClient } from '../src/core/protocol/client.js';
import { mintProxyToken } from '../src/stores/tokens/tokens.js';
import { startDevUpstream, waitLine } from './support/dev-upstream.js';

const HERE = resolve(import.meta.dirname, '..');
const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] as string) : def;
};
const ROOT = resolve(arg('root', HERE));
const WORKERS = Number(arg('workers', '2'));
const C = Number(arg('c', '16'));
const N = Number(arg('n', '3000'));
const ROUNDS = Number(arg('rounds', '5'));
const ROUTE = arg('route', 'socket');
const PROF = arg('cpu-prof', '');
const DIST = process.argv.includes('--dist');
const STRACE = arg('strace', '');
/** Node flags for the daemon process (A/B a flag on one build), e.g. --node-flags "--max-semi-space-size=1". */
const NODE_FLAGS = arg('node-flags', '').split(' ').filter(Boolean);
/** Copy the daemon's stdout and stderr to FILE (e.g. V8's `--trace-gc` output, which goes to the process's stdout). */
const DAEMON_LOG = arg('daemon-log', '');
const TOKENS = Number(arg('tokens', '1'));
const TICK_US = 10_000;

/** [main thread ticks, all threads ticks] */
function ticks(pid: number): [number, number] {
  let main = 0;
  let all = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const s = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      const t = Number(f[11]) + Number(f[12]);
      all += t;
      if (Number(tid) === pid) main += t;
    } catch {
      // thread exited
    }
  }
  return [main, all];
}

const { work, upstream: up, env } = await startDevUpstream('dcpu');

const socketPath = join(work, 'd.sock');
const daemon = spawn(
  process.execPath,
  [
    ...NODE_FLAGS,
    ...(PROF ? ['--cpu-prof', '--cpu-prof-dir', resolve(PROF)] : []),
    ...(DIST
      ? [join(ROOT, 'dist', 'src', 'front', 'main.js')]
      : ['--import', 'tsx', join(ROOT, 'src', 'front', 'main.ts')]),
    '--socket',
    socketPath,
    '--workers',
    String(WORKERS),
    ...(ROUTE === 'v' ? ['--http', '127.0.0.1:0'] : []),
    ...(ROUTE === 'proxy' ? ['--https-proxy', '127.0.0.1:0'] : []),
  ],
  { env, stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT },
);
// However this script ends (an error, or EPIPE when its output is piped into `head`), the daemon and the
// upstream must not outlive it: orphans left running skew every later measurement on this machine.
process.once('exit', () => {
  daemon.kill('SIGTERM');
  up.kill('SIGTERM');
});
process.stderr.on('error', () => process.exit(1));
process.stdout.on('error', () => process.exit(1));
if (DAEMON_LOG) {
  const log = createWriteStream(resolve(DAEMON_LOG));
  daemon.stdout?.pipe(log);
  daemon.stderr?.pipe(log);
}
const httpLine = ROUTE === 'v' ? waitLine(daemon, /HTTP on http:/) : undefined;
const proxyLine = ROUTE === 'proxy' ? waitLine(daemon, /HTTPS proxy on http:/) : undefined;
await waitLine(daemon, /listening on/);
const pid = daemon.pid as number;
const httpUrl = httpLine && /(http:\/\/\S+)/.exec(await httpLine)?.[1];
for (let i = 1; i < TOKENS; i++) {
  await mintProxyToken(env.AIVAULT_DIR as string, { capabilities: ['openai/chat-completions'] });
}
const proxyToken =
  ROUTE === 'v' || ROUTE === 'proxy'
    ? (await mintProxyToken(env.AIVAULT_DIR as string, { capabilities: ['openai/chat-completions'] })).token
    : '';
const http = httpUrl ? new Pool(httpUrl, { connections: C, pipelining: 1 }) : undefined;
const proxyMatch = proxyLine && /http:\/\/(\S+) \(CA (\S+)\)/.exec(await proxyLine);
const proxyAgent = proxyMatch
  ? new ProxyAgent({
      uri: `http://aivault:${proxyToken}@${proxyMatch[1] as string}`,
      connections: C,
      requestTls: { ca: readFileSync(proxyMatch[2] as string, 'utf8') },
    })
  : undefined;

const clients: DaemonClient[] = [];
for (let i = 0; i < Math.min(C, 16); i++) clients.push(await connect({ socketPath }));
const envelope = {
  capability: 'openai/chat-completions',
  request: {
    method: 'POST',
    path: '/v1/chat/completions',
    headers: [['content-type', 'application/json']] as [string, string][],
    body: '{"model":"gpt-bench","messages":[{"role":"user","content":"hi"}]}',
  },
};
let rr = 0;
let errors = 0;
/** Wall µs of each call of the current round, and (`/v/`) the daemon's own Server-Timing total. */
let walls: number[] = [];
let inDaemon: number[] = [];
async function run(n: number): Promise<void> {
  let left = n;
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (left-- > 0) {
        const t0 = performance.now();
        if (http || proxyAgent) {
          const r = await (
            proxyAgent
              ? request('https://api.openai.com/v1/chat/completions', {
                  dispatcher: proxyAgent,
                  method: 'POST',
                  headers: { 'content-type': 'application/json' },
                  body: envelope.request.body,
                })
              : (http as Pool).request({
                  method: 'POST',
                  path: '/v/openai/v1/chat/completions',
                  headers: { authorization: `Bearer ${proxyToken}`, 'content-type': 'application/json' },
                  body: envelope.request.body,
                })
          ).catch(() => undefined);
          await r?.body.dump();
          walls.push((performance.now() - t0) * 1000);
          const total = /total;dur=([\d.]+)/.exec(String(r?.headers['server-timing'] ?? ''))?.[1];
          if (total !== undefined) inDaemon.push(Number(total) * 1000);
          if (!r || r.statusCode !== 200) errors++;
          continue;
        }
        const r = await (clients[rr++ % clients.length] as DaemonClient)
          .invoke(envelope)
          .catch(() => undefined);
        walls.push((performance.now() - t0) * 1000);
        if (!r || r.status !== 200) errors++;
      }
    }),
  );
}

await run(Math.max(500, N / 4)); // warm-up (JIT, crypto port, catalog, TLS sessions)
const tracer = STRACE
  ? spawn('strace', ['-c', '-f', '-o', resolve(STRACE), '-p', String(pid)], { stdio: 'ignore' })
  : undefined;
if (tracer) {
  // strace attaches to every thread before it starts counting; a few calls make sure it has.
  await new Promise((r) => setTimeout(r, 500));
  await run(50);
}
const rows: { mainUs: number; allUs: number; rps: number; p50Us: number; daemonP50Us?: number }[] = [];
const p50 = (v: number[]): number => v.sort((a, b) => a - b)[Math.floor(v.length / 2)] as number;
for (let r = 0; r < ROUNDS; r++) {
  walls = [];
  inDaemon = [];
  const [m0, a0] = ticks(pid);
  const t0 = performance.now();
  await run(N);
  const ms = performance.now() - t0;
  const [m1, a1] = ticks(pid);
  const row = {
    mainUs: ((m1 - m0) * TICK_US) / N,
    allUs: ((a1 - a0) * TICK_US) / N,
    rps: (N * 1000) / ms,
    p50Us: Math.round(p50(walls)),
    ...(inDaemon.length > 0 ? { daemonP50Us: Math.round(p50(inDaemon)) } : {}),
  };
  rows.push(row);
  process.stdout.write(
    `${JSON.stringify({ root: ROOT, route: ROUTE, workers: WORKERS, c: C, n: N, ...row, errors })}\n`,
  );
}
const med = (k: 'mainUs' | 'allUs' | 'rps' | 'p50Us' | 'daemonP50Us'): number =>
  rows.map((x) => x[k] ?? 0).sort((a, b) => a - b)[Math.floor(rows.length / 2)] as number;
process.stderr.write(
  `daemon-cpu ${ROOT} ${ROUTE} w${WORKERS} c${C}: median main ${med('mainUs').toFixed(0)} µs/req, all threads ${med('allUs').toFixed(0)} µs/req, ${med('rps').toFixed(0)} req/s, call p50 ${med('p50Us')} µs${ROUTE !== 'socket' ? ` (in the daemon: ${med('daemonP50Us')} µs, Server-Timing total)` : ''}, errors ${errors}\n`,
);
const rssMb = (): number =>
  Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
process.stderr.write(`daemon RSS after the rounds: ${rssMb().toFixed(0)} MB\n`);
if (tracer) {
  const exited = new Promise((r) => tracer.once('exit', r));
  tracer.kill('SIGINT');
  await exited;
  const total = N * ROUNDS + 50;
  process.stderr.write(`strace -c over ${total} requests (${resolve(STRACE)}):\n`);
  for (const line of readFileSync(resolve(STRACE), 'utf8').split('\n')) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(\d+)?\s*(\w+)$/.exec(line);
    if (m) {
      const calls = Number(m[1]);
      process.stderr.write(
        `  ${(m[3] as string).padEnd(16)} ${String(calls).padStart(8)} calls  ${(calls / total).toFixed(3)}/req${m[2] ? `  (${m[2]} errors)` : ''}\n`,
      );
    }
  }
}
for (const c of clients) c.close();
await http?.close();
daemon.kill('SIGTERM');
up.kill('SIGTERM');
// The profiles are written when the daemon exits.
if (PROF) await new Promise((r) => daemon.once('exit', r));

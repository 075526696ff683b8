/**
 * `npm run bench` (full, ~10 min) / `npm run bench -- --quick` (~2–3 min): every figure is a ratio against
 * baselines measured IN THIS RUN on this machine.
 *
 * Targets, all proxying the same POST to the bench's own HTTPS upstream (bench/support/upstream.ts):
 *   direct          the load generator talks to the upstream itself (TLS, keep-alive)
 *   node-floor      minimal node:http + undici proxy injecting the header (bench/support/node-floor.ts)
 *   nginx           proxy_set_header Authorization, upstream keepalive (installed from Debian if missing)
 *   aivaultd-wN     aivaultd over its unix-socket msgpack protocol, N = 1, 2, 4 request workers
 *   aivaultd-http-* `POST /aivault/proxy` and `/v/{credential}/…` (when the HTTP listener exists)
 * Load: our closed-loop driver (bench/support/driver.ts) for every target (one load generator → fair
 * ratios), plus wrk on the HTTP targets (full run) as a cross-check. Then SSE streaming, 1,000 open
 * streams, large bodies, a stability run, CLI wall time (hyperfine) and micro-benchmarks (bench/micro.ts).
 * Output: bench/results/<date>[-quick].{json,md,svg}; a full run also replaces bench/results/LATEST.md.
 * Flags: --quick, --no-build, --out DIR, --only SECTIONS (load,wrk,http,scrape,stream,open,stability,cli,micro,fleet),
 * --merge FILE.json (re-run --only sections into an earlier run), --render FILE.json, --stability-s N,
 * --shared-ok (measure even when the load average says the machine is busy: bench/load-guard.ts).
 * Targets (PASS/MISS per ratio): bench/targets.ts, printed at the end and in the report and LATEST.md.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { connect } from '../src/core/protocol/client.js';
import type { DriverConfig, LoadResult, Target } from './support/driver.js';
import { cpuMicros, processTree, rssBytes } from './support/proc.js';
import { ensureDebian, freePort, startNginx, type Nginx } from './support/nginx.js';
import { renderChart } from './support/chart.js';
import { renderMarkdown, renderLatest, type Results } from './support/report.js';
import { evaluateTargets, formatTargets } from './targets.js';
import { enforceLoadGuard } from './load-guard.js';

const ROOT = resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const NO_BUILD = args.includes('--no-build');
const OUT = args.includes('--out')
  ? resolve(args[args.indexOf('--out') + 1] as string)
  : join(ROOT, 'bench', 'results');
const ONLY = args.includes('--only')
  ? new Set((args[args.indexOf('--only') + 1] as string).split(','))
  : undefined;
/** Sections: load, wrk, http, scrape, stream, open, stability, cli, micro (`--only open,cli` while developing). */
const MERGE = args.includes('--merge') ? resolve(args[args.indexOf('--merge') + 1] as string) : undefined;
const want = (section: string): boolean => !ONLY || ONLY.has(section);
// The bundled CLI: what the `aivault` bin runs (package.json), so its start-up is what gets measured.
const CLI = join(ROOT, 'dist', 'src', 'cli-bundle', 'main.js');
const DAEMON = join(ROOT, 'dist', 'src', 'front', 'main.js');
const TSX = ['--import', 'tsx'];

const P = QUICK
  ? {
      durationMs: 1500,
      warmupMs: 500,
      conc: [1, 64, 256],
      workers: [1, 2],
      wrk: false,
      sseEvents: 10,
      sseInterval: 20,
      openStreams: 1000,
      openEvents: 4,
      openInterval: 1000,
      stabilityMs: 10_000,
      largeBytes: 16 << 20,
      largeRepeats: 2,
      cliRuns: 10,
    }
  : {
      durationMs: 5000,
      warmupMs: 1000,
      conc: [1, 16, 64, 256],
      workers: [1, 2, 4],
      wrk: true,
      sseEvents: 10,
      sseInterval: 25,
      openStreams: 1000,
      openEvents: 10,
      openInterval: 1000,
      stabilityMs: 60_000,
      largeBytes: 64 << 20,
      largeRepeats: 3,
      cliRuns: 30,
    };

if (args.includes('--stability-s')) P.stabilityMs = Number(args[args.indexOf('--stability-s') + 1]) * 1000;

const children = new Set<ChildProcess>();
const log = (s: string): void => void process.stderr.write(`${s}\n`);

/** Spawn a long-lived child and wait for a line matching `ready` (stdout or stderr). */
function startChild(
  cmd: string,
  argv: string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp,
): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(cmd, argv, { env, stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return new Promise((resolveP, reject) => {
    let buf = '';
    const on = (d: Buffer): void => {
      buf += d.toString();
      const line = buf.split('\n').find((l) => ready.test(l));
      if (line) {
        child.stdout?.off('data', on);
        child.stderr?.off('data', on);
        child.stdout?.resume();
        child.stderr?.resume();
        resolveP({ child, line });
      }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
    child.once('exit', (code) =>
      reject(new Error(`${cmd} ${argv.join(' ')} exited ${code}: ${buf.slice(-400)}`)),
    );
    setTimeout(
      () => reject(new Error(`${argv.join(' ')} not ready in 30 s: ${buf.slice(-400)}`)),
      30_000,
    ).unref();
  });
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  return new Promise((r) => {
    if (child.exitCode !== null || child.signalCode !== null) return r();
    child.once('exit', () => r());
    child.kill(signal);
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  });
}

/** Run the driver in its own process; returns its JSON line. */
function drive<T>(cfg: DriverConfig): Promise<T> {
  return new Promise((resolveP, reject) => {
    const child = spawn(
      process.execPath,
      [...TSX, join(ROOT, 'bench', 'support', 'driver.ts'), JSON.stringify(cfg)],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => {
      children.delete(child);
      const line = out.trim().split('\n').at(-1) ?? '';
      if (code === 0 && line.startsWith('{')) resolveP(JSON.parse(line) as T);
      else reject(new Error(`driver exited ${code}: ${err.slice(-600)}`));
    });
  });
}

function runWrk(
  url: string,
  c: number,
  seconds: number,
  pids: number[],
  header?: string,
): LoadResult & { generator: string } {
  const env = { ...process.env, BENCH_WRK_HEADER: header ?? '' };
  const lua = join(ROOT, 'bench', 'support', 'wrk.lua');
  const base = ['-t', '1', '-c', String(c), '--timeout', '10s', '-s', lua, url];
  spawnSync('wrk', ['-d', '1s', ...base], { env, stdio: 'ignore' }); // warm-up
  const cpu0 = cpuMicros(pids);
  const r = spawnSync('wrk', ['-d', `${seconds}s`, ...base], { env, encoding: 'utf8' });
  const cpu1 = cpuMicros(pids);
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('WRKJSON '));
  if (!line) throw new Error(`wrk produced no summary: ${r.stderr}`);
  const j = JSON.parse(line.slice(8)) as {
    requests: number;
    durationUs: number;
    errors: number;
    p50us: number;
    p99us: number;
    p999us: number;
    meanUs: number;
  };
  const durationMs = j.durationUs / 1000;
  return {
    generator: 'wrk',
    requests: j.requests,
    errors: j.errors,
    durationMs,
    rps: (j.requests / durationMs) * 1000,
    p50us: j.p50us,
    p99us: j.p99us,
    p999us: j.p999us,
    meanUs: j.meanUs,
    cpuUsPerReq: j.requests ? (cpu1 - cpu0) / j.requests : 0,
    cpuCoresBusy: (cpu1 - cpu0) / 1000 / durationMs,
    rssMB: rssBytes(pids) / 1048576,
  };
}

function machine(): Results['machine'] {
  const cpu = cpus();
  let distro = '';
  try {
    distro = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '';
  } catch {
    /* not Linux */
  }
  return {
    cpuModel: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memGB: Math.round(totalmem() / 1073741824),
    kernel: release(),
    os: distro,
    node: process.version,
    loadavgStart: loadavg().map((x) => Number(x.toFixed(2))),
    loadavgEnd: [],
    otherNodeProcessesAtStart: countOtherNodeProcesses(),
  };
}

/**
 * Node-ish processes that are not this bench: the bench's own process tree (upstream, driver, daemons,
 * the npm that started it) is excluded, or every run would call itself "shared".
 */
function countOtherNodeProcesses(): number {
  const parentOf = (pid: string): string | undefined => {
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid …" — comm may hold spaces, so split after the last ')'.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1];
    } catch {
      return undefined;
    }
  };
  const ours = new Set<string>([String(process.pid)]);
  for (let p = parentOf(String(process.pid)); p && p !== '0' && p !== '1'; p = parentOf(p)) ours.add(p);
  const inOurTree = (pid: string): boolean => {
    for (let p: string | undefined = pid, hops = 0; p && p !== '0' && hops < 64; p = parentOf(p), hops++) {
      if (p === String(process.pid)) return true;
    }
    return ours.has(pid);
  };
  let n = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || inOurTree(d)) continue;
    try {
      if (/^(node|vitest|esbuild|tsc)/.test(readFileSync(`/proc/${d}/comm`, 'utf8'))) n++;
    } catch {
      /* gone */
    }
  }
  return n;
}

interface Daemon {
  pid: number;
  socketPath: string;
  workers: number;
  httpPort?: number;
  stop(): Promise<void>;
}

async function main(): Promise<void> {
  const loadNote = enforceLoadGuard(args);
  const started = Date.now();
  const results: Results = {
    date: new Date().toISOString(),
    mode: QUICK ? 'quick' : 'full',
    params: P,
    machine: machine(),
    versions: {},
    load: [],
    sse: [],
    openStreams: [],
    large: [],
    stability: undefined,
    crypto: undefined,
    cli: undefined,
    micro: undefined,
    checks: [],
    skipped: [],
    notes: loadNote ? [loadNote] : [],
  };
  if (!NO_BUILD) {
    log('bench: npm run build …');
    const b = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, encoding: 'utf8' });
    if (b.status !== 0) {
      if (!existsSync(DAEMON)) throw new Error(`build failed and there is no dist/: ${b.stderr}`);
      results.notes.push(
        '`npm run build` failed at bench time (others were editing src/); the existing dist/ was measured.',
      );
      log('bench: build failed, measuring the existing dist/');
    }
  }
  const work = mkdtempSync(join(tmpdir(), 'aivault-bench-'));
  const vaultDir = join(work, 'vault');
  const baseEnv = { ...process.env };
  delete baseEnv.AIVAULT_KEY;

  // 1. upstream
  const up = await startChild(
    process.execPath,
    [...TSX, join(ROOT, 'bench', 'support', 'upstream.ts')],
    baseEnv,
    /^\{"port"/,
  );
  const upInfo = JSON.parse(up.line) as { port: number; caCertPath: string };
  const upPids = [up.child.pid as number];
  log(`bench: upstream https://127.0.0.1:${upInfo.port}`);

  // 2. dev vault + key
  const env: NodeJS.ProcessEnv = {
    ...baseEnv,
    AIVAULT_DIR: vaultDir,
    AIVAULT_DEV_RESOLVE: `api.openai.com=127.0.0.1:${upInfo.port}`,
    AIVAULT_DEV_CA_CERT_PATH: upInfo.caCertPath,
    AIVAULTD_AUTOSTART: '0',
    NO_COLOR: '1',
  };
  const cli = (argv: string[], input?: string): string => {
    const r = spawnSync(process.execPath, [CLI, ...argv], { env, input: input ?? '', encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`aivault ${argv.join(' ')} failed: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  cli(['init', '--dev']);
  cli(
    ['secrets', 'create', '--name', 'OPENAI_API_KEY', '--value-stdin'],
    'sk-bench-aivault-0123456789abcdef',
  );
  results.notes.push(
    'aivaultd runs with its default configuration: audit log on disk (one line per call), secrets read fresh from disk per call.',
  );

  const startDaemon = async (workers: number, extra: string[] = []): Promise<Daemon> => {
    const socketPath = join(work, `d${workers}-${Date.now()}.sock`);
    const { child } = await startChild(
      process.execPath,
      [
        ...(process.env.BENCH_DAEMON_NODE_FLAGS ?? '').split(' ').filter(Boolean),
        DAEMON,
        '--socket',
        socketPath,
        '--workers',
        String(workers),
        ...extra,
      ],
      env,
      /listening on/,
    );
    // one call to warm the pool (crypto port, catalog, TLS) before anything is measured
    const c = await connect({ socketPath });
    for (let i = 0; i < workers * 4; i++) {
      await Promise.all(
        Array.from({ length: workers * 2 }, () =>
          c.invoke({
            capability: 'openai/chat-completions',
            request: { method: 'POST', path: '/v1/chat/completions', body: '{}' },
          }),
        ),
      );
    }
    c.close();
    return { pid: child.pid as number, socketPath, workers, stop: () => stopChild(child) };
  };

  // 3. node-floor, nginx
  const nf = await startChild(
    process.execPath,
    [...TSX, join(ROOT, 'bench', 'support', 'node-floor.ts')],
    { ...baseEnv, BENCH_UPSTREAM_PORT: String(upInfo.port), BENCH_CA_CERT_PATH: upInfo.caCertPath },
    /^\{"port"/,
  );
  const nfPort = (JSON.parse(nf.line) as { port: number }).port;
  const nginx: Nginx | string = await startNginx(join(work, 'nginx'), upInfo.port, upInfo.caCertPath);
  if (typeof nginx === 'string') {
    results.skipped.push({ target: 'nginx', reason: nginx });
    log(`bench: skipped nginx: ${nginx}`);
  } else results.versions.nginx = nginx.version;
  const nginxPids = typeof nginx === 'string' ? [] : processTree(nginx.pid);
  const wrkWhy = P.wrk ? ensureDebian('wrk', ['wrk']) : 'quick mode (wrk cross-check only in the full run)';
  if (wrkWhy) results.skipped.push({ target: 'wrk cross-check', reason: wrkWhy });

  const API = '/v1/chat/completions';
  const httpTargets: { name: string; target: Target; pids: number[]; wrkUrl?: string; wrkHeader?: string }[] =
    [
      {
        name: 'direct',
        target: { kind: 'http', url: `https://127.0.0.1:${upInfo.port}`, caCertPath: upInfo.caCertPath },
        pids: upPids,
        wrkUrl: `https://127.0.0.1:${upInfo.port}${API}`,
      },
      {
        name: 'node-floor',
        target: { kind: 'http', url: `http://127.0.0.1:${nfPort}` },
        pids: [nf.child.pid as number],
        wrkUrl: `http://127.0.0.1:${nfPort}${API}`,
      },
    ];
  if (typeof nginx !== 'string') {
    httpTargets.push({
      name: 'nginx',
      target: { kind: 'http', url: `http://127.0.0.1:${nginx.port}` },
      pids: nginxPids,
      wrkUrl: `http://127.0.0.1:${nginx.port}${API}`,
    });
  }

  const point = async (name: string, target: Target, pids: number[], c: number): Promise<LoadResult> => {
    const r = await drive<LoadResult>({
      mode: 'http',
      target,
      pids,
      concurrency: c,
      durationMs: P.durationMs,
      warmupMs: P.warmupMs,
      path: API,
    });
    results.load.push({ target: name, generator: 'driver', concurrency: c, ...r });
    log(
      `  ${name.padEnd(22)} c=${String(c).padEnd(3)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${(r.p50us / 1000).toFixed(2)} ms  p99 ${(r.p99us / 1000).toFixed(2)} ms  cpu ${r.cpuUsPerReq.toFixed(0)} µs/req  err ${r.errors}`,
    );
    return r;
  };

  // 4. load: HTTP targets
  log('bench: load (driver) …');
  if (want('load'))
    for (const t of httpTargets) for (const c of P.conc) await point(t.name, t.target, t.pids, c);
  if (!wrkWhy && want('wrk')) {
    log('bench: load (wrk cross-check) …');
    for (const t of httpTargets) {
      for (const c of P.conc) {
        let r: ReturnType<typeof runWrk>;
        try {
          r = runWrk(t.wrkUrl as string, c, Math.round(P.durationMs / 1000), t.pids, t.wrkHeader);
        } catch (err) {
          results.skipped.push({
            target: `wrk ${t.name} c=${c}`,
            reason: (err as Error).message.slice(0, 200),
          });
          continue;
        }
        results.load.push({ target: t.name, concurrency: c, ...r });
        log(
          `  wrk ${t.name.padEnd(18)} c=${String(c).padEnd(3)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${(r.p50us / 1000).toFixed(2)} ms`,
        );
      }
    }
  }

  // 5. load: aivaultd over the socket, 1/2/4 workers; crypto utilisation at c=64 with 2 workers
  const statusOf = async (socketPath: string): Promise<Record<string, unknown>> => {
    const c = await connect({ socketPath });
    try {
      return await c.operator('status');
    } finally {
      c.close();
    }
  };
  for (const w of want('load') ? P.workers : []) {
    const d = await startDaemon(w);
    const target: Target = {
      kind: 'socket',
      socketPath: d.socketPath,
      capability: 'openai/chat-completions',
    };
    for (const c of P.conc) {
      const before = await statusOf(d.socketPath);
      const r = await point(`aivaultd-w${w}`, target, [d.pid], c);
      const after = await statusOf(d.socketPath);
      if (typeof after.cryptoElActiveMs === 'number' && typeof before.cryptoElActiveMs === 'number') {
        const act = (after.cryptoElActiveMs as number) - before.cryptoElActiveMs;
        const idle = (after.cryptoElIdleMs as number) - (before.cryptoElIdleMs as number);
        const u = act / Math.max(1e-9, act + idle);
        (results.load.at(-1) as { cryptoElu?: number }).cryptoElu = u;
        if (w === 2 || (w === P.workers.at(-1) && !results.crypto)) {
          if (c === 64 || !results.crypto)
            results.crypto = { workers: w, concurrency: c, utilisation: u, rps: r.rps };
        }
      } else if (!results.crypto) {
        results.notes.push(
          'the daemon`s status frame has no cryptoElActiveMs: crypto worker utilisation not measured',
        );
      }
    }
    await d.stop();
  }

  // 6. aivaultd HTTP listener (POST /aivault/proxy, /v/{credential}/…) — when it exists
  const http = want('http') ? await probeHttpListener() : 'not requested (--only)';
  let httpDaemon: Daemon | undefined;
  if (typeof http === 'string') {
    results.skipped.push({
      target: 'aivaultd-http-proxy, aivaultd-http-passthrough, aivaultd-https-proxy',
      reason: http,
    });
    log(`bench: ${http}`);
  } else {
    const port = await freePort();
    // The HTTPS proxy (CONNECT + TLS termination with the vault CA) on the same daemon, when the build has it.
    const proxyPort = http.httpsProxy ? await freePort() : undefined;
    httpDaemon = await startDaemon(2, [
      '--http',
      `127.0.0.1:${port}`,
      ...(proxyPort !== undefined ? ['--https-proxy', `127.0.0.1:${proxyPort}`] : []),
    ]);
    httpDaemon.httpPort = port;
    const token = await http.mintToken(env, httpDaemon);
    const hdrs: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const tps: typeof httpTargets = [
      {
        name: 'aivaultd-http-proxy',
        target: {
          kind: 'http',
          url: `http://127.0.0.1:${port}`,
          headers: hdrs,
          envelopeRoute: '/aivault/proxy',
          capability: 'openai/chat-completions',
        },
        pids: [httpDaemon.pid],
      },
      {
        name: 'aivaultd-http-passthrough',
        target: { kind: 'http', url: `http://127.0.0.1:${port}`, headers: hdrs, pathPrefix: '/v/openai' },
        pids: [httpDaemon.pid],
        wrkUrl: `http://127.0.0.1:${port}/v/openai${API}`,
        ...(token ? { wrkHeader: `Authorization: Bearer ${token}` } : {}),
      },
      ...(proxyPort !== undefined && token
        ? [
            {
              name: 'aivaultd-https-proxy',
              target: {
                kind: 'http' as const,
                url: 'https://api.openai.com',
                proxy: {
                  uri: `http://aivault:${token}@127.0.0.1:${proxyPort}`,
                  caCertPath: join(vaultDir, 'ca', 'aivault-ca.pem'),
                },
              },
              pids: [httpDaemon.pid],
            },
          ]
        : []),
    ];
    for (const t of tps) {
      try {
        for (const c of P.conc) await point(t.name, t.target, t.pids, c);
        httpTargets.push(t);
      } catch (err) {
        results.skipped.push({ target: t.name, reason: `failed: ${(err as Error).message.slice(0, 200)}` });
      }
    }
  }

  if (want('scrape')) await scrapeSection({ startDaemon, drive, env, results, path: API });

  // 7. streaming: SSE time to first event / inter-event delay (1 and 32 streams), large bodies
  log('bench: streaming …');
  const d2 = await startDaemon(2);
  // Idle RSS: started and warmed up (pool, crypto port, catalog, TLS), before any load.
  await new Promise((r) => setTimeout(r, 1000));
  results.idle = { target: 'aivaultd-w2', rssMB: rssBytes([d2.pid]) / 1048576 };
  log(`  idle RSS aivaultd-w2 ${results.idle.rssMB.toFixed(0)} MB`);
  const streamTargets: { name: string; target: Target; pids: number[] }[] = [
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
  for (const streams of want('stream') ? [1, 32] : []) {
    for (const t of streamTargets) {
      const r = await drive<Record<string, number>>({
        mode: 'sse',
        target: t.target,
        pids: t.pids,
        path: `${API}/sse?n=${P.sseEvents}&interval=${P.sseInterval}`,
        streams,
        events: P.sseEvents,
        intervalMs: P.sseInterval,
        rounds: streams === 1 ? (QUICK ? 5 : 20) : QUICK ? 1 : 3,
        warmupPath: `${API}/sse?n=1&interval=0`,
      });
      results.sse.push({ target: t.name, ...r });
      log(
        `  sse ${t.name.padEnd(20)} streams=${streams} ttfe p50 ${(r.ttfeP50us! / 1000).toFixed(2)} ms  gap p99 +${(r.gapExcessP99us! / 1000).toFixed(2)} ms`,
      );
    }
  }
  for (const t of want('stream') ? streamTargets : []) {
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

  // 8. 1,000 concurrent open streams: aivaultd RSS and event delay (node-floor alongside)
  log(`bench: ${P.openStreams} open streams …`);
  for (const t of want('open')
    ? [
        streamTargets.find((s) => s.name === 'node-floor'),
        streamTargets.find((s) => s.name === 'aivaultd-w2'),
      ]
    : []) {
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

  // 9. stability: c=64 for 60 s, RSS sampled every second
  log(`bench: stability ${P.stabilityMs / 1000} s …`);
  if (want('stability')) {
    const samples: number[] = [];
    const timer = setInterval(() => samples.push(rssBytes([d2.pid]) / 1048576), 1000);
    const r = await drive<LoadResult>({
      mode: 'http',
      target: { kind: 'socket', socketPath: d2.socketPath, capability: 'openai/chat-completions' },
      pids: [d2.pid],
      concurrency: 64,
      durationMs: P.stabilityMs,
      warmupMs: 1000,
      path: API,
    });
    clearInterval(timer);
    const q = Math.max(1, Math.floor(samples.length / 4));
    const avg = (a: number[]): number => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);
    const early = avg(samples.slice(q, 2 * q));
    const late = avg(samples.slice(-q));
    results.stability = {
      target: 'aivaultd-w2',
      concurrency: 64,
      seconds: P.stabilityMs / 1000,
      rps: r.rps,
      errors: r.errors,
      rssSamplesMB: samples.map((s) => Number(s.toFixed(1))),
      rssEarlyMB: early,
      rssLateMB: late,
      growthMB: late - early,
    };
    log(`  rss ${early.toFixed(1)} → ${late.toFixed(1)} MB at ${r.rps.toFixed(0)} req/s`);
  }

  // 10. CLI wall time: aivault invoke vs node -e 0 vs curl (same upstream), hyperfine when available
  log('bench: CLI …');
  if (want('cli')) results.cli = runCliBench(env, d2.socketPath, upInfo);
  await d2.stop();
  if (httpDaemon) await httpDaemon.stop();

  // 11. micro-benchmarks
  log('bench: micro …');
  if (want('micro')) {
    const r = spawnSync(
      process.execPath,
      [...TSX, join(ROOT, 'bench', 'micro.ts'), ...(QUICK ? ['--quick'] : [])],
      {
        cwd: ROOT,
        env: { ...baseEnv, BENCH_VAULT_DIR: vaultDir },
        encoding: 'utf8',
        timeout: 300_000,
      },
    );
    const line = (r.stdout ?? '').trim().split('\n').at(-1) ?? '';
    if (r.status === 0 && line.startsWith('[')) results.micro = JSON.parse(line) as Results['micro'];
    else
      results.skipped.push({
        target: 'micro-benchmarks',
        reason: `bench/micro.ts failed: ${(r.stderr ?? '').slice(-300)}`,
      });
  }

  // 12. fleet admission (issue 18): local SharedArrayBuffer vs Redis, rows appended to the micro table
  if (want('fleet')) {
    log('bench: fleet admission …');
    const r = spawnSync(
      process.execPath,
      [...TSX, join(ROOT, 'bench', 'fleet.ts'), ...(QUICK ? ['--quick'] : [])],
      {
        cwd: ROOT,
        env: baseEnv,
        encoding: 'utf8',
        timeout: 300_000,
      },
    );
    const line = (r.stdout ?? '').trim().split('\n').at(-1) ?? '';
    if (r.status === 0 && line.startsWith('['))
      results.micro = [...(results.micro ?? []), ...(JSON.parse(line) as NonNullable<Results['micro']>)];
    else
      results.skipped.push({
        target: 'fleet admission',
        reason: `bench/fleet.ts failed: ${(r.stderr ?? '').slice(-300)}`,
      });
  }

  // teardown
  if (typeof nginx !== 'string') await nginx.stop();
  await stopChild(nf.child);
  await stopChild(up.child);
  results.machine.loadavgEnd = loadavg().map((x) => Number(x.toFixed(2)));
  results.machine.otherNodeProcessesAtEnd = countOtherNodeProcesses();
  results.versions.node = process.version;
  results.versions.wrk = spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout?.split('\n')[0]?.trim() ?? '';
  results.versions.hyperfine =
    spawnSync('hyperfine', ['--version'], { encoding: 'utf8' }).stdout?.trim() ?? '';
  if (MERGE) {
    // Re-ran some sections (--only …) to replace them in an earlier full run's results.
    const prev = JSON.parse(readFileSync(MERGE, 'utf8')) as Results;
    if (want('stream')) {
      prev.sse = results.sse;
      prev.large = results.large;
      prev.params = { ...prev.params, sseEvents: P.sseEvents, sseInterval: P.sseInterval };
    }
    if (want('open')) {
      prev.openStreams = results.openStreams;
      prev.idle = results.idle;
    }
    if (want('stability')) prev.stability = results.stability;
    if (want('cli')) prev.cli = results.cli;
    if (want('micro') || want('fleet')) prev.micro = results.micro;
    prev.notes.push(
      `Sections ${[...(ONLY ?? [])].join(', ')} were re-run at ${results.date} (load average then ${results.machine.loadavgStart.join(' / ')}) and merged into this run.`,
    );
    prev.elapsedS = (prev.elapsedS ?? 0) + Math.round((Date.now() - started) / 1000);
    Object.assign(results, prev);
  }
  results.elapsedS = results.elapsedS ?? Math.round((Date.now() - started) / 1000);
  rmSync(work, { recursive: true, force: true });
  await writeOutputs(results);
}

/** Re-evaluate the targets and write <stamp>.{json,md,svg} + LATEST.md. */
async function writeOutputs(results: Results): Promise<void> {
  results.checks = evaluateTargets(results);
  log(formatTargets(results.checks));
  mkdirSync(OUT, { recursive: true });
  const stamp = results.date.slice(0, 16).replace(/[:T]/g, '-');
  const quick = results.mode === 'quick';
  const base = join(OUT, `${stamp}${quick ? '-quick' : ''}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`);
  const svgName = `${stamp}${quick ? '-quick' : ''}.svg`;
  writeFileSync(`${base}.svg`, await renderChart(results));
  writeFileSync(`${base}.md`, renderMarkdown(results, svgName));
  // LATEST.md is what the README quotes: only a full run replaces it.
  if (!quick) writeFileSync(join(OUT, 'LATEST.md'), renderLatest(results, stamp));
  process.stdout.write(renderLatest(results, `${stamp}${quick ? '-quick' : ''}`));
  log(
    `bench: wrote ${base}.{json,md,svg}${quick ? '' : ` and ${join(OUT, 'LATEST.md')}`} in ${results.elapsedS} s`,
  );
}

/**
 * Section `scrape`: does scraping GET /metrics change request latency? /v/ passthrough at c=16 on a
 * 2-worker daemon, without a scraper, with one scraping every 100 ms (an operator token, as Prometheus
 * would), and without again (the baseline is the mean of the two unscraped runs, so drift shows).
 */
async function scrapeSection(ctx: {
  startDaemon(workers: number, extra?: string[]): Promise<Daemon>;
  drive<T>(cfg: DriverConfig): Promise<T>;
  env: NodeJS.ProcessEnv;
  results: Results;
  /** The upstream path every call asks for. */
  path: string;
}): Promise<void> {
  const { results } = ctx;
  log('bench: metrics scrape (passthrough c=16, scraper every 100 ms) …');
  const port = await freePort();
  const d = await ctx.startDaemon(2, ['--http', `127.0.0.1:${port}`]);
  try {
    const tokens = (await import(pathToFileURL(join(ROOT, 'src', 'stores', 'tokens', 'tokens.ts')).href)) as {
      mintProxyToken(
        dir: string,
        input: { capabilities: string[]; ttlMs?: number },
      ): Promise<{ token: string }>;
      createOperatorToken(dir: string, input: { name: string }): Promise<{ token: string }>;
    };
    const dir = ctx.env.AIVAULT_DIR as string;
    const proxy = (await tokens.mintProxyToken(dir, { capabilities: ['openai/*'], ttlMs: 3_600_000 })).token;
    const operator = (await tokens.createOperatorToken(dir, { name: 'bench-scraper' })).token;
    const base = `http://127.0.0.1:${port}`;
    const first = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${operator}` } });
    if (first.status !== 200) {
      results.skipped.push({ target: 'metrics-scrape', reason: `GET /metrics answered ${first.status}` });
      return;
    }
    await first.text();
    const target: Target = {
      kind: 'http',
      url: base,
      headers: { authorization: `Bearer ${proxy}` },
      pathPrefix: '/v/openai',
    };
    const run = async (name: string): Promise<LoadResult> => {
      const r = await ctx.drive<LoadResult>({
        mode: 'http',
        target,
        pids: [d.pid],
        concurrency: 16,
        durationMs: P.durationMs,
        warmupMs: P.warmupMs,
        path: ctx.path,
      });
      results.load.push({ target: name, generator: 'driver', concurrency: 16, ...r });
      log(
        `  ${name.padEnd(28)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${(r.p50us / 1000).toFixed(2)} ms  p99 ${(r.p99us / 1000).toFixed(2)} ms  cpu ${r.cpuUsPerReq.toFixed(0)} µs/req`,
      );
      return r;
    };
    const a1 = await run('passthrough-unscraped');
    let scrapes = 0;
    let failed = 0;
    let bytes = 0;
    const timer = setInterval(() => {
      fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${operator}` } })
        .then(async (res) => {
          bytes = (await res.text()).length;
          if (res.status === 200) scrapes++;
          else failed++;
        })
        .catch(() => failed++);
    }, 100);
    let b: LoadResult;
    try {
      b = await run('passthrough-scraped-100ms');
    } finally {
      clearInterval(timer);
    }
    const a2 = await run('passthrough-unscraped-again');
    const mean = (k: 'p50us' | 'p99us' | 'rps' | 'cpuUsPerReq'): number => (a1[k] + a2[k]) / 2;
    const ratio = (k: 'p50us' | 'p99us' | 'rps' | 'cpuUsPerReq'): string => (b[k] / mean(k)).toFixed(3);
    const line =
      `metrics scrape every 100 ms (${scrapes} scrapes of ${(bytes / 1024).toFixed(0)} KB, ${failed} failed) ` +
      `vs none, /v/ passthrough c=16: p50 ×${ratio('p50us')}, p99 ×${ratio('p99us')}, ` +
      `req/s ×${ratio('rps')}, CPU/req ×${ratio('cpuUsPerReq')} (baseline: mean of the runs before and after)`;
    results.notes.push(line);
    log(`  ${line}`);
  } finally {
    await d.stop();
  }
}

interface HttpListener {
  mintToken(env: NodeJS.ProcessEnv, d: Daemon): Promise<string | undefined>;
  /** The daemon build serves `--https-proxy` too. */
  httpsProxy: boolean;
}

/** The HTTP listener is being built in parallel: use it only when the build has it. */
async function probeHttpListener(): Promise<HttpListener | string> {
  const srcDir = join(ROOT, 'src', 'front');
  const files = readdirSync(srcDir).filter((f) => /^http-.*\.ts$/.test(f));
  const help = spawnSync(process.execPath, [DAEMON, '--help'], { encoding: 'utf8' }).stdout ?? '';
  if (files.length === 0 || !help.includes('--http')) return 'skipped: HTTP listener not available';
  const tokensModule = join(ROOT, 'src', 'stores', 'tokens', 'tokens.ts');
  if (!existsSync(tokensModule))
    return 'skipped: HTTP listener present but src/stores/tokens/tokens.ts (proxy tokens) is not';
  return {
    httpsProxy: help.includes('--https-proxy'),
    async mintToken(env) {
      // Loaded by path: the module is being written in parallel and may not exist in every checkout.
      const mod = (await import(pathToFileURL(tokensModule).href)) as {
        mintProxyToken(
          dir: string,
          input: { capabilities: string[]; ttlMs?: number; label?: string },
        ): Promise<{ token: string }>;
      };
      const { token } = await mod.mintProxyToken(env.AIVAULT_DIR as string, {
        capabilities: ['openai/*'],
        ttlMs: 3_600_000,
        label: 'bench',
      });
      return token;
    },
  };
}

function runCliBench(
  env: NodeJS.ProcessEnv,
  socketPath: string,
  up: { port: number; caCertPath: string },
): Results['cli'] {
  const cliEnv = { ...env, AIVAULTD_SOCKET: socketPath };
  const body = '{"model":"gpt-bench"}';
  const cmds = {
    'node -e 0': [process.execPath, '-e', '0'],
    'aivault invoke': [process.execPath, CLI, 'invoke', 'openai/chat-completions', '--body', body],
    curl: [
      'curl',
      '-s',
      '-o',
      '/dev/null',
      '--cacert',
      up.caCertPath,
      '-H',
      'content-type: application/json',
      '-d',
      body,
      `https://localhost:${up.port}/v1/chat/completions`,
    ],
  } as const;
  // sanity: the CLI call must succeed
  const check = spawnSync(cmds['aivault invoke'][0], cmds['aivault invoke'].slice(1), {
    env: cliEnv,
    encoding: 'utf8',
  });
  if (check.status !== 0) throw new Error(`aivault invoke failed: ${check.stderr}`);
  const out: NonNullable<Results['cli']> = {
    tool: '',
    runs: P.cliRuns,
    medianMs: {},
    meanMs: {},
    stddevMs: {},
  };
  const hfWhy = ensureDebian('hyperfine', ['hyperfine']);
  if (!hfWhy) {
    const json = join(tmpdir(), `hyperfine-${process.pid}.json`);
    const q = (a: readonly string[]): string => a.map((x) => `'${x.replace(/'/g, "'\\''")}'`).join(' ');
    const r = spawnSync(
      'hyperfine',
      [
        '-N',
        '--warmup',
        '3',
        '--runs',
        String(P.cliRuns),
        '--export-json',
        json,
        ...Object.values(cmds).map(q),
      ],
      { env: cliEnv, encoding: 'utf8' },
    );
    if (r.status === 0) {
      const names = Object.keys(cmds);
      const j = JSON.parse(readFileSync(json, 'utf8')) as {
        results: { median: number; mean: number; stddev: number }[];
      };
      j.results.forEach((x, i) => {
        const n = names[i] as string;
        out.medianMs[n] = x.median * 1000;
        out.meanMs[n] = x.mean * 1000;
        out.stddevMs[n] = x.stddev * 1000;
      });
      out.tool = 'hyperfine';
      rmSync(json, { force: true });
      return out;
    }
  }
  out.tool = `repeated runs (hyperfine unavailable: ${hfWhy ?? 'failed'})`;
  for (const [n, argv] of Object.entries(cmds)) {
    const t: number[] = [];
    for (let i = 0; i < P.cliRuns + 3; i++) {
      const t0 = performance.now();
      spawnSync(argv[0], argv.slice(1), { env: cliEnv, stdio: 'ignore' });
      if (i >= 3) t.push(performance.now() - t0);
    }
    t.sort((a, b) => a - b);
    out.medianMs[n] = t[Math.floor(t.length / 2)] as number;
    out.meanMs[n] = t.reduce((a, b) => a + b, 0) / t.length;
  }
  return out;
}

if (args.includes('--render')) {
  // Re-render an existing results file (after a report change): no measuring.
  const file = resolve(args[args.indexOf('--render') + 1] as string);
  await writeOutputs(JSON.parse(readFileSync(file, 'utf8')) as Results);
  process.exit(0);
}

const cleanup = (): void => {
  for (const c of children) c.kill('SIGKILL');
};
process.on('SIGINT', () => (cleanup(), process.exit(130)));
main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  cleanup();
  process.exit(1);
});

/**
 * Closed-loop load driver (a child process of the bench): `c` callers each send a request, wait for the
 * whole answer, record the latency (hdr histogram, µs) and send the next. Modes:
 *   http    undici Pool (c connections) to an http(s) URL; with `proxy`, an undici ProxyAgent through
 *           aivaultd's HTTPS proxy (CONNECT + TLS to the vault CA's leaf cert) to the real https URL
 *   socket  aivaultd's own client (library `connect()`), min(c, 16) multiplexed connections
 *   sse     open `streams` SSE streams (http or socket): time to first event, inter-event delay
 *   large   one large streamed body at a time: MB/s
 * CPU and RSS of the proxy's process tree (`pids`) are read right at the start and end of the measured
 * window. Prints one JSON result line on stdout. Config = JSON in argv[2].
 */
import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import * as hdr from 'hdr-histogram-js';
import { Pool, ProxyAgent, request } from 'undici';
import { connect, type DaemonClient } from '../../src/core/protocol/client.js';
import type { Envelope } from '../../src/core/broker/types.js';
import { cpuMicros, rssBytes } from './proc.js';

export interface Target {
  kind: 'http' | 'socket';
  /** http: base URL (scheme://host:port) */
  url?: string;
  /** http: extra request headers (e.g. a proxy token) */
  headers?: Record<string, string>;
  /** http: path prefix in front of the upstream path (e.g. /v/openai) */
  pathPrefix?: string;
  /** socket */
  socketPath?: string;
  capability?: string;
  caCertPath?: string;
  /** http: wrap the request in an envelope (POST /aivault/proxy) */
  envelopeRoute?: string;
  /** http: go through an HTTPS proxy (`http://aivault:<token>@127.0.0.1:PORT`) trusting `ca` (PEM path) */
  proxy?: { uri: string; caCertPath: string };
}

export interface DriverConfig {
  mode: 'http' | 'socket' | 'sse' | 'large';
  target: Target;
  pids: number[];
  concurrency?: number;
  durationMs?: number;
  warmupMs?: number;
  /** upstream path + query */
  path: string;
  body?: string;
  streams?: number;
  /** sse: timed rounds of `streams` streams (TTFE samples = streams × rounds) */
  rounds?: number;
  /** sse: a one-event stream path opened `streams` times, untimed, before the timed rounds */
  warmupPath?: string;
  events?: number;
  intervalMs?: number;
  rampMs?: number;
  bytes?: number;
  repeats?: number;
}

export interface LoadResult {
  requests: number;
  errors: number;
  durationMs: number;
  rps: number;
  p50us: number;
  p99us: number;
  p999us: number;
  meanUs: number;
  cpuUsPerReq: number;
  cpuCoresBusy: number;
  rssMB: number;
}

const cfg = JSON.parse(process.argv[2] as string) as DriverConfig;
const BODY = cfg.body ?? '{"model":"gpt-bench","messages":[{"role":"user","content":"hi"}]}';

function hist(): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 120_000_000,
    numberOfSignificantValueDigits: 3,
  });
}

type Call = () => Promise<boolean>;
type Opener = (onData: (chunk: Uint8Array) => void, path?: string) => Promise<void>;

async function makeCaller(
  t: Target,
  concurrency: number,
): Promise<{ call: Call; open: Opener; close(): Promise<void> }> {
  const method = 'POST';
  if (t.kind === 'socket') {
    const n = Math.max(1, Math.min(concurrency, 16));
    const clients: DaemonClient[] = [];
    for (let i = 0; i < n; i++) clients.push(await connect({ socketPath: t.socketPath as string }));
    let rr = 0;
    const envelope = (path: string): Envelope => ({
      capability: t.capability as string,
      request: { method, path, headers: [['content-type', 'application/json']], body: BODY },
    });
    const env = envelope(cfg.path);
    return {
      call: async () => {
        const c = clients[rr++ % n] as DaemonClient;
        const res = await c.invoke(env);
        return res.status < 400;
      },
      open: async (onData, path = cfg.path) => {
        const c = clients[rr++ % n] as DaemonClient;
        const s = c.stream(envelope(path));
        await s.head;
        for await (const chunk of s.body) onData(chunk);
      },
      close: async () => {
        for (const c of clients) c.close();
      },
    };
  }
  if (t.proxy) {
    const agent = new ProxyAgent({
      uri: t.proxy.uri,
      connections: Math.max(1, concurrency),
      requestTls: { ca: readFileSync(t.proxy.caCertPath, 'utf8') },
    });
    const send = (path: string) =>
      request(`${t.url as string}${path}`, {
        dispatcher: agent,
        method,
        headers: { 'content-type': 'application/json', ...(t.headers ?? {}) },
        body: BODY,
      });
    return {
      call: async () => {
        const res = await send(cfg.path);
        await res.body.dump({ limit: Number.MAX_SAFE_INTEGER });
        return res.statusCode < 400;
      },
      open: async (onData, path = cfg.path) => {
        const res = await send(path);
        for await (const chunk of res.body) onData(chunk as Buffer);
      },
      close: () => agent.close(),
    };
  }
  const ca = t.caCertPath ? readFileSync(t.caCertPath, 'utf8') : undefined;
  const pool = new Pool(t.url as string, {
    connections: Math.max(1, concurrency),
    pipelining: 1,
    keepAliveTimeout: 60_000,
    headersTimeout: 120_000,
    bodyTimeout: 120_000,
    ...(ca ? { connect: { ca, servername: 'localhost' } } : {}),
  });
  const headers: Record<string, string> = { 'content-type': 'application/json', ...(t.headers ?? {}) };
  const req = (path: string) =>
    t.envelopeRoute
      ? pool.request({
          path: t.envelopeRoute,
          method: 'POST',
          headers,
          body: JSON.stringify({
            capability: t.capability,
            request: { method, path, headers: [['content-type', 'application/json']], body: BODY },
          }),
        })
      : pool.request({ path: (t.pathPrefix ?? '') + path, method, headers, body: BODY });
  return {
    call: async () => {
      const res = await req(cfg.path);
      await res.body.dump({ limit: Number.MAX_SAFE_INTEGER });
      return res.statusCode < 400;
    },
    open: async (onData, path = cfg.path) => {
      const res = await req(path);
      for await (const chunk of res.body) onData(chunk as Buffer);
    },
    close: () => pool.close(),
  };
}

async function load(): Promise<LoadResult> {
  const c = cfg.concurrency ?? 1;
  const caller = await makeCaller(cfg.target, c);
  const h = hist();
  let requests = 0;
  let errors = 0;
  let measuring = false;
  let stop = false;
  const loop = async (): Promise<void> => {
    while (!stop) {
      const t0 = performance.now();
      let ok = false;
      try {
        ok = await caller.call();
      } catch {
        ok = false;
      }
      if (!measuring) continue;
      const us = Math.max(1, Math.round((performance.now() - t0) * 1000));
      h.recordValue(us);
      requests++;
      if (!ok) {
        errors++;
        if (errors > 1000 && errors === requests) await new Promise((r) => setTimeout(r, 5));
      }
    }
  };
  const loops = Array.from({ length: c }, loop);
  await new Promise((r) => setTimeout(r, cfg.warmupMs ?? 1000));
  const cpu0 = cpuMicros(cfg.pids);
  const t0 = performance.now();
  measuring = true;
  await new Promise((r) => setTimeout(r, cfg.durationMs ?? 5000));
  measuring = false;
  const t1 = performance.now();
  const cpu1 = cpuMicros(cfg.pids);
  const rss = rssBytes(cfg.pids);
  stop = true;
  await Promise.all(loops);
  await caller.close();
  const durationMs = t1 - t0;
  return {
    requests,
    errors,
    durationMs,
    rps: (requests / durationMs) * 1000,
    p50us: h.getValueAtPercentile(50),
    p99us: h.getValueAtPercentile(99),
    p999us: h.getValueAtPercentile(99.9),
    meanUs: h.mean,
    cpuUsPerReq: requests > 0 ? (cpu1 - cpu0) / requests : 0,
    cpuCoresBusy: (cpu1 - cpu0) / 1000 / durationMs,
    rssMB: rss / 1048576,
  };
}

async function sse(): Promise<Record<string, number>> {
  const streams = cfg.streams ?? 1;
  const events = cfg.events ?? 10;
  const interval = cfg.intervalMs ?? 100;
  const caller = await makeCaller(cfg.target, Math.min(streams, 1024));
  const ttfe = hist();
  const gapExcess = hist();
  const delay = hist();
  let errors = 0;
  const errorSamples = new Set<string>();
  let rssMax = 0;
  let opened = 0;
  const sampler = setInterval(() => (rssMax = Math.max(rssMax, rssBytes(cfg.pids))), 250);
  const one = async (): Promise<void> => {
    const t0 = performance.now();
    let last = -1;
    let seen = 0;
    let buf = '';
    const dec = new TextDecoder();
    try {
      await caller.open((chunk) => {
        const now = performance.now();
        const wall = Date.now();
        buf += dec.decode(chunk, { stream: true });
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const ev = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const m = /"t":(\d+)/.exec(ev);
          if (m) delay.recordValue(Math.max(1, (wall - Number(m[1])) * 1000));
          if (seen === 0) ttfe.recordValue(Math.max(1, Math.round((now - t0) * 1000)));
          else gapExcess.recordValue(Math.max(1, Math.round(Math.abs(now - last - interval) * 1000)));
          if (seen === 0) opened++;
          last = now;
          seen++;
        }
      });
      if (seen !== events) {
        errors++;
        errorSamples.add(`stream ended after ${seen} of ${events} events`);
      }
    } catch (err) {
      errors++;
      if (errorSamples.size < 5)
        errorSamples.add(`${(err as { code?: string }).code ?? ''} ${(err as Error).message}`.slice(0, 160));
    }
  };
  // Warm-up: the same number of one-event streams first, so connections (TLS to the upstream, the
  // proxies' upstream pools) exist and the JIT is warm before anything is timed.
  if (cfg.warmupPath) {
    await Promise.all(
      Array.from({ length: streams }, () =>
        caller.open(() => undefined, cfg.warmupPath).catch(() => undefined),
      ),
    );
  }
  const ramp = cfg.rampMs ?? 0;
  const cpu0 = cpuMicros(cfg.pids);
  for (let round = 0; round < (cfg.rounds ?? 1); round++) {
    const all: Promise<void>[] = [];
    for (let s = 0; s < streams; s++) {
      all.push(one());
      if (ramp > 0 && s % 50 === 49) await new Promise((r) => setTimeout(r, (ramp * 50) / streams));
    }
    await Promise.all(all);
  }
  const cpu1 = cpuMicros(cfg.pids);
  clearInterval(sampler);
  await caller.close();
  return {
    streams,
    opened,
    errors,
    ttfeP50us: ttfe.getValueAtPercentile(50),
    ttfeP99us: ttfe.getValueAtPercentile(99),
    gapExcessP50us: gapExcess.getValueAtPercentile(50),
    gapExcessP99us: gapExcess.getValueAtPercentile(99),
    deliveryDelayP50ms: delay.getValueAtPercentile(50) / 1000,
    deliveryDelayP99ms: delay.getValueAtPercentile(99) / 1000,
    rssMaxMB: rssMax / 1048576,
    cpuMs: (cpu1 - cpu0) / 1000,
    ...(errorSamples.size ? { errorSamples: [...errorSamples].join(' | ') } : {}),
  } as unknown as Record<string, number>;
}

async function large(): Promise<Record<string, number>> {
  const caller = await makeCaller(cfg.target, 1);
  const times: number[] = [];
  let bytes = 0;
  let errors = 0;
  for (let i = 0; i < (cfg.repeats ?? 3); i++) {
    const t0 = performance.now();
    let got = 0;
    try {
      await caller.open((c) => (got += c.byteLength));
    } catch {
      errors++;
    }
    if (got !== cfg.bytes) errors++;
    bytes = got;
    times.push(performance.now() - t0);
  }
  await caller.close();
  times.sort((a, b) => a - b);
  const med = times[Math.floor(times.length / 2)] as number;
  return { bytes, medianMs: med, mbPerSec: bytes / 1048576 / (med / 1000), errors };
}

const run = cfg.mode === 'sse' ? sse() : cfg.mode === 'large' ? large() : load();
run.then(
  (r) => {
    process.stdout.write(`${JSON.stringify(r)}\n`);
    process.exit(0);
  },
  (err: unknown) => {
    process.stderr.write(`driver failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);

/**
 * GET /metrics and Server-Timing against a real daemon (uWS, piscina request workers, crypto worker) and
 * the HTTPS mock upstream: after N calls through each transport (socket frames, /aivault/proxy, /v/…
 * passthrough, /aivault/ws) the call counters and histogram counts equal N; refusals are counted by code;
 * no label or value holds a secret or a token; /metrics needs an operator token and `--metrics-open`
 * serves it without one; Server-Timing is present and parseable on proxy and passthrough responses.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connect } from '../../../src/core/protocol/client.js';
import {
  ANTHROPIC_SECRET,
  ECHO_SECRET,
  OPENAI_SECRET,
  startHttpFixture,
  type HttpFixture,
} from './http-fixture.js';

const N = 3;
let fx: HttpFixture;
let operatorToken: string;
let proxyToken: string;

beforeAll(async () => {
  fx = await startHttpFixture({ metricsOpen: '127.0.0.1:0' });
  operatorToken = await fx.operator();
  proxyToken = await fx.mint({ capabilities: ['echo/api', 'echo/special'] });
}, 60_000);
afterAll(() => fx?.close());

/** Prometheus text → `name{labels}` → value (labels in the order prom-client writes them). */
function parse(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

async function scrape(token: string | undefined): Promise<Response> {
  return fetch(`${fx.baseUrl}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
}

async function metrics(): Promise<{ text: string; values: Map<string, number> }> {
  const res = await scrape(operatorToken);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return { text, values: parse(text) };
}

const value = async (series: string): Promise<number | undefined> => (await metrics()).values.get(series);

/** `policy;dur=0.4, secret;dur=0.1, upstream;dur=2, total;dur=3` → {policy: 0.4, …}. */
function parseServerTiming(header: string | null): Record<string, number> {
  expect(header).toBeTruthy();
  const out: Record<string, number> = {};
  for (const part of (header as string).split(',')) {
    const m = /^\s*([a-z]+);dur=([0-9.]+)\s*$/.exec(part);
    expect(m, part).not.toBeNull();
    out[(m as RegExpExecArray)[1] as string] = Number((m as RegExpExecArray)[2]);
  }
  return out;
}

describe('GET /metrics', () => {
  it('needs an operator token: none or a proxy token → 401 operator_auth_required', async () => {
    for (const token of [undefined, proxyToken, 'avo_not-a-real-token']) {
      const res = await scrape(token);
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe('operator_auth_required');
    }
  });

  it('counts N calls per transport, with histogram counts equal to N and no secret anywhere', async () => {
    // Unix socket frames (the CLI's transport); one asks for the daemon's timings.
    const client = await connect({ socketPath: fx.daemon.socketPath });
    try {
      for (let i = 0; i < N; i++) {
        const res = await client.invoke(
          { capability: 'echo/api', request: { method: 'GET', path: '/hello' } },
          {},
          { timing: i === 0 },
        );
        expect(res.status).toBe(200);
        if (i === 0) {
          expect(res.timing?.total).toBeGreaterThan(0);
          expect(res.timing?.upstream).toBeGreaterThan(0);
          expect(res.timing?.policy).toBeGreaterThanOrEqual(0);
          expect(res.timing?.secret).toBeGreaterThanOrEqual(0);
        } else expect(res.timing).toBeUndefined(); // only when asked: older clients never see the field
      }
    } finally {
      client.close();
    }
    // POST /aivault/proxy and /v/ passthrough, each with a Server-Timing header.
    for (let i = 0; i < N; i++) {
      const res = await fetch(`${fx.baseUrl}/aivault/proxy`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${proxyToken}` },
        body: JSON.stringify({ capability: 'echo/api', request: { method: 'GET', path: '/hello' } }),
      });
      expect(res.status).toBe(200);
      const t = parseServerTiming(res.headers.get('server-timing'));
      expect(Object.keys(t)).toEqual(['policy', 'secret', 'upstream', 'total']);
      expect(t.total).toBeGreaterThanOrEqual(t.upstream as number);
      await res.text();
    }
    for (let i = 0; i < N; i++) {
      const res = await fetch(`${fx.baseUrl}/v/echo/hello?x=${i}`, {
        headers: { authorization: `Bearer ${proxyToken}` },
      });
      expect(res.status).toBe(200);
      const t = parseServerTiming(res.headers.get('server-timing'));
      expect(t.upstream).toBeGreaterThan(0);
      await res.text();
    }
    // /aivault/ws relays: connect, get the upstream's hello, close.
    for (let i = 0; i < N; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${fx.daemon.http?.port}/aivault/ws`, {
        headers: { authorization: `Bearer ${proxyToken}` },
      });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const first = new Promise<void>((resolve) => ws.once('message', () => resolve()));
      ws.send(JSON.stringify({ capability: 'echo/api', path: '/rt/ws-echo' }));
      await first;
      const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
      ws.close(1000);
      await closed;
    }

    const series = (transport: string): string =>
      `aivault_calls_total{capability="echo/api",transport="${transport}",outcome="ok"}`;
    // A worker counts right after it answered: wait for the last relay's count to land.
    await expect.poll(() => value(series('ws')), { timeout: 10_000 }).toBe(N);
    const { text, values } = await metrics();
    for (const transport of ['socket', 'proxy', 'passthrough', 'ws']) {
      expect(values.get(series(transport)), transport).toBe(N);
      expect(values.get(`aivault_call_seconds_count{transport="${transport}"}`), transport).toBe(N);
      expect(values.get(`aivault_call_seconds_bucket{transport="${transport}",le="+Inf"}`), transport).toBe(
        N,
      );
    }
    for (const transport of ['socket', 'proxy', 'passthrough']) {
      for (const h of ['aivault_policy_seconds', 'aivault_secret_seconds', 'aivault_upstream_ttfb_seconds']) {
        expect(values.get(`${h}_count{transport="${transport}"}`), `${h} ${transport}`).toBe(N);
      }
      // The echo upstream reflects the injected key: every response was scrubbed.
      expect(values.get(`aivault_scrubbed_responses_total{transport="${transport}"}`)).toBe(N);
    }
    expect(values.get('aivault_upstream_connect_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(values.get('aivault_calls_in_flight{transport="proxy"}')).toBe(0);
    expect(values.get('aivault_open_streams{transport="ws"}')).toBe(0);
    expect(values.get('aivault_crypto_worker_utilization')).toBeGreaterThanOrEqual(0);
    // A few calls in a row fit in one worker (src/pool/worker-spread.ts).
    expect(values.get('aivault_request_workers_active')).toBe(1);
    expect(values.get('aivault_process_resident_memory_bytes')).toBeGreaterThan(0);
    for (const thread of ['main', 'crypto', 'worker-0']) {
      expect(values.has(`aivault_event_loop_delay_seconds{thread="${thread}",stat="p99"}`), thread).toBe(
        true,
      );
    }
    // No label or value holds a secret or a token.
    for (const secret of [ECHO_SECRET, OPENAI_SECRET, ANTHROPIC_SECRET, proxyToken, operatorToken]) {
      expect(text).not.toContain(secret);
    }
    expect(text).not.toContain('/hello');
  });

  it('counts refusals by code, at the listener and in the pipeline', async () => {
    const before = await metrics();
    const get = (m: Map<string, number>, k: string): number => m.get(k) ?? 0;
    // token_invalid at the listener (no worker involved), twice.
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${fx.baseUrl}/v/echo/hello`, {
        headers: { authorization: 'Bearer avp_nope' },
      });
      expect(res.status).toBe(401);
      await res.text();
    }
    // policy_violation in the worker: echo/special allows GET only.
    const res = await fetch(`${fx.baseUrl}/aivault/proxy`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${proxyToken}` },
      body: JSON.stringify({ capability: 'echo/special', request: { method: 'DELETE', path: '/special/x' } }),
    });
    expect(res.status).toBe(403);
    await res.text();
    // capability_not_found: the caller's string never becomes a label.
    const missing = await fetch(`${fx.baseUrl}/aivault/proxy`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${proxyToken}` },
      body: JSON.stringify({ capability: 'echo/caller-made-this-up', request: { method: 'GET', path: '/' } }),
    });
    expect(missing.status).toBeGreaterThanOrEqual(400);
    await missing.text();

    const refused = 'aivault_refusals_total{transport="proxy",code="policy_violation"}';
    await expect
      .poll(async () => (await value(refused)) ?? 0, { timeout: 10_000 })
      .toBe(get(before.values, refused) + 1);
    const after = await metrics();
    const tokenInvalid = 'aivault_refusals_total{transport="passthrough",code="token_invalid"}';
    expect(get(after.values, tokenInvalid) - get(before.values, tokenInvalid)).toBe(2);
    const planned =
      'aivault_calls_total{capability="echo/special",transport="proxy",outcome="policy_violation"}';
    expect(get(after.values, planned) - get(before.values, planned)).toBe(1);
    expect(after.text).not.toContain('caller-made-this-up');
  });

  it('reports rate-limit headroom per rate-limited capability', async () => {
    const patched = await fx.api(operatorToken, 'PATCH', '/aivault/capabilities/echo/special', {
      rateLimitPerMinute: 10,
    });
    expect(patched.status).toBe(200);
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${fx.baseUrl}/v/echo/special/x${i}`, {
        headers: { authorization: `Bearer ${proxyToken}` },
      });
      expect(res.status).toBe(200);
      await res.text();
    }
    const { values } = await metrics();
    expect(values.get('aivault_rate_limit_headroom{capability="echo/special"}')).toBe(8);
    expect(values.has('aivault_rate_limit_headroom{capability="echo/api"}')).toBe(false);
  });

  it('--metrics-open serves GET /metrics without a token, and nothing else', async () => {
    const open = fx.daemon.metricsOpen;
    expect(open).toBeDefined();
    const base = `http://127.0.0.1:${open?.port}`;
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain('aivault_calls_total{capability="echo/api",transport="socket",outcome="ok"}');
    expect(text).not.toContain(operatorToken);
    expect((await fetch(`${base}/aivault/health`)).status).toBe(404);
    expect((await fetch(`${base}/metrics`, { method: 'POST' })).status).toBe(405);
  });

  it('each thread reports its heap, and gives it back once quiet after a burst', async () => {
    const releases = async (): Promise<Record<string, number>> => {
      const { values } = await metrics();
      const out: Record<string, number> = {};
      for (const thread of ['main', 'worker-0']) {
        const total = values.get(`aivault_thread_heap_total_bytes{thread="${thread}"}`) ?? 0;
        expect(total, thread).toBeGreaterThanOrEqual(
          values.get(`aivault_thread_heap_used_bytes{thread="${thread}"}`) ?? Infinity,
        );
        out[thread] = values.get(`aivault_thread_idle_releases_total{thread="${thread}"}`) ?? -1;
      }
      return out;
    };
    const before = await releases();
    // A burst: the main thread and the request worker are busy for a while.
    const client = await connect({ socketPath: fx.daemon.socketPath });
    try {
      let left = 600;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (left-- > 0) {
            const res = await client.invoke({
              capability: 'echo/api',
              request: { method: 'GET', path: '/b' },
            });
            expect(res.status).toBe(200);
          }
        }),
      );
    } finally {
      client.close();
    }
    // Then quiet: scraped once a second only (a scrape is main-thread work too), each thread runs one
    // collection after ~6 s (src/core/threads/idle-release.ts).
    await expect
      .poll(
        async () => {
          const now = await releases();
          return Object.keys(now).filter((t) => (now[t] as number) > (before[t] as number));
        },
        { timeout: 30_000, interval: 1000 },
      )
      .toEqual(['main', 'worker-0']);
  }, 60_000);
});

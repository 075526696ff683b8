/**
 * Upstreams that speak HTTP/2. The request workers' undici Agent offers ALPN `h2` (src/request-worker/
 * pipeline/upstream.ts), and OpenAI, Anthropic and most large providers accept it, so in production most
 * calls go out over HTTP/2 — multiplexed, many calls per connection. Every other e2e test talks to an
 * HTTP/1.1-only mock; this file runs the same contracts against an h2 one: auth injected, the key scrubbed
 * from what is reflected, auth-class response headers dropped, SSE streamed as it arrives, a reset stream
 * reported as upstream_unreachable, a caller that leaves cancels its upstream stream, a graceful GOAWAY
 * letting open streams finish, concurrent calls sharing one connection up to the peer's stream limit.
 * AIVAULT_DEV_HTTP1_ONLY keeps HTTP/1.1.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../../src/core/protocol/client.js';
import { startHttpFixture, ECHO_SECRET, type HttpFixture } from './http-fixture.js';

let fx: HttpFixture;
beforeAll(async () => {
  // The test dev vaults pin HTTP/1.1 (test/support/dev-vault.ts); this one lets the Agent offer h2.
  fx = await startHttpFixture({ upstream: { h2: true }, env: { AIVAULT_DEV_HTTP1_ONLY: '0' } });
}, 60_000);
afterAll(() => fx?.close());

const proxy = (token: string, envelope: unknown): Promise<Response> =>
  fetch(`${fx.baseUrl}/aivault/proxy`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(envelope),
  });

async function readTimed(res: Response, t0: number): Promise<{ text: string; arrivals: number[] }> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const arrivals: number[] = [];
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    arrivals.push(Date.now() - t0);
    text += Buffer.from(value).toString('utf8');
  }
  return { text, arrivals };
}

/**
 * `n` SSE streams at once through `/v/` (3 events 400 ms apart), each read to its end. POSTs, like the
 * LLM calls they stand for (undici would not put a POST beside another call on a connection by default).
 */
async function sseBurst(f: HttpFixture, n: number): Promise<{ text: string; arrivals: number[] }[]> {
  const token = await f.mint({ capabilities: ['echo/*'] });
  const t0 = Date.now();
  return Promise.all(
    Array.from({ length: n }, async () =>
      readTimed(
        await fetch(`${f.baseUrl}/v/echo/sse?n=3&interval=400`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: '{"stream":true}',
        }),
        t0,
      ),
    ),
  );
}

/** A token for echo/*, after one call through it (so the h2 session is up and known to speak h2). */
async function warmToken(): Promise<string> {
  const token = await fx.mint({ capabilities: ['echo/*'] });
  await (await fetch(`${fx.baseUrl}/v/echo/warm`, { headers: { authorization: `Bearer ${token}` } })).text();
  return token;
}

/** `aivault_upstream_retries_total{reason="refused_stream"}` from /metrics (an operator token). */
async function refusedRetries(): Promise<number> {
  const res = await fetch(`${fx.baseUrl}/metrics`, {
    headers: { authorization: `Bearer ${await fx.operator()}` },
  });
  const line = (await res.text())
    .split('\n')
    .find((l) => l.startsWith('aivault_upstream_retries_total{reason="refused_stream"} '));
  return Number(line?.split(' ')[1]);
}

async function until(check: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return check();
}

describe('an HTTP/2 upstream', () => {
  // First in the file: the request worker has never reached this upstream, so it does not know it speaks h2.
  it('a cold burst of 40 streams dials a few connections, not 40, and every stream starts at once', async () => {
    const results = await sseBurst(fx, 40);
    for (const r of results) {
      expect(r.text.match(/data: /g)).toHaveLength(3);
      // Had the calls held back while the protocol was unknown waited for a stream to end, they would
      // start ~1 s late.
      expect(r.arrivals[0]).toBeLessThan(700);
    }
    // At most 4 dials while the protocol is unknown (src/request-worker/pipeline/h2-multiplex.ts COLD_DIALS),
    // then the rest share them; a few more only if a dial finished after the first answer.
    expect(fx.upstream.connections.count).toBeLessThanOrEqual(6);
  });

  it('gets the call over h2 with auth injected; the reflected key comes back scrubbed', async () => {
    const token = await fx.mint({ capabilities: ['echo/api'] });
    const res = await proxy(token, {
      capability: 'echo/api',
      request: { method: 'POST', path: '/hello?x=1', body: 'hi', headers: { 'x-custom': 'yes' } },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-upstream')).toBe('ok');
    const text = await res.text();
    const seen = JSON.parse(text) as {
      path: string;
      query: string;
      body: string;
      httpVersion: string;
      headers: Record<string, string>;
    };
    expect(seen.httpVersion).toBe('2.0');
    expect(seen.path).toBe('/hello');
    expect(seen.query).toBe('x=1');
    expect(seen.body).toBe('hi');
    expect(seen.headers['x-custom']).toBe('yes');
    expect(seen.headers[':authority']).toBe('upstream.test');
    expect(fx.upstream.requests.at(-1)?.headers.authorization).toBe(`Bearer ${ECHO_SECRET}`);
    expect(seen.headers.authorization).toMatch(/^Bearer \[redacted:[A-Z_]+\]$/);
    expect(text).not.toContain(ECHO_SECRET);
    expect(text).not.toContain(token);
  });

  it('passthrough /v/ and the unix socket go over h2 too; a binary body arrives byte for byte', async () => {
    const token = await fx.mint({ capabilities: ['echo/*'] });
    const sent = Buffer.concat([Buffer.from([0, 0xff, 0xfe, 0x80]), Buffer.alloc(300_000, 0xc3)]);
    const res = await fetch(`${fx.baseUrl}/v/echo/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
      body: sent,
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    const last = fx.upstream.requests.at(-1);
    expect(last?.httpVersion).toBe('2.0');
    expect(Buffer.from(last?.bodyBase64 ?? '', 'base64').equals(sent)).toBe(true);

    const client = await connect({ socketPath: fx.daemon.socketPath });
    try {
      const r = await client.invoke({ capability: 'echo/api', request: { method: 'GET', path: '/unix' } });
      expect(r.status).toBe(200);
      expect(fx.upstream.requests.at(-1)).toMatchObject({ path: '/unix', httpVersion: '2.0' });
    } finally {
      client.close();
    }
  });

  it('drops auth-class response headers (set-cookie arrives as an h2 header list)', async () => {
    const token = await fx.mint({ capabilities: ['echo/api'] });
    const res = await proxy(token, {
      capability: 'echo/api',
      request: { method: 'GET', path: '/leaky-headers' },
    });
    expect(res.status).toBe(200);
    for (const h of ['set-cookie', 'authorization', 'www-authenticate', 'x-api-key', 'proxy-authenticate']) {
      expect(res.headers.get(h)).toBeNull();
    }
    expect(res.headers.get('x-upstream')).toBe('ok');
    expect(await res.text()).not.toContain(ECHO_SECRET);
  });

  it('passes an upstream error status through', async () => {
    const token = await fx.mint({ capabilities: ['echo/api'] });
    const res = await proxy(token, {
      capability: 'echo/api',
      request: { method: 'GET', path: '/status/429' },
    });
    expect(res.status).toBe(429);
    expect(((await res.json()) as { httpVersion: string }).httpVersion).toBe('2.0');
  });

  it('streams SSE as it arrives: the first event long before the last', async () => {
    const token = await fx.mint({ capabilities: ['echo/*'] });
    const t0 = Date.now();
    const res = await fetch(`${fx.baseUrl}/v/echo/sse?n=4&interval=250`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const { text, arrivals } = await readTimed(res, t0);
    expect(text.match(/data: /g)).toHaveLength(4);
    expect(Date.now() - t0 - (arrivals[0] as number)).toBeGreaterThanOrEqual(500);
    expect(fx.upstream.requests.at(-1)?.httpVersion).toBe('2.0');
  });

  it('a stream reset before END_STREAM is upstream_unreachable, never a complete answer with a cut body', async () => {
    // undici 7 alone reports CANCEL and NO_ERROR resets as complete responses (src/request-worker/pipeline/
    // h2-multiplex.ts); INTERNAL_ERROR and a destroyed server stream are the other forms.
    const client = await connect({ socketPath: fx.daemon.socketPath });
    try {
      for (const path of ['/reset', '/reset?code=0', '/reset?code=2', '/reset?code=8']) {
        await expect(
          client.invoke({ capability: 'echo/api', request: { method: 'GET', path } }),
          path,
        ).rejects.toMatchObject({ code: 'upstream_unreachable' });
      }
      const token = await fx.mint({ capabilities: ['echo/*'] });
      const streamed = await fetch(`${fx.baseUrl}/v/echo/reset?code=8`, {
        headers: { authorization: `Bearer ${token}` },
      });
      // The head went out before the reset: the relayed stream must end in an error, not a clean end.
      await expect(streamed.arrayBuffer()).rejects.toThrow();
      const before = fx.upstream.connections.count;
      const r = await client.invoke({
        capability: 'echo/api',
        request: { method: 'GET', path: '/after-reset' },
      });
      expect(r.status).toBe(200);
      // RST_STREAM ends one stream, not the session: the next call needed no new connection.
      expect(fx.upstream.connections.count).toBe(before);
    } finally {
      client.close();
    }
  });

  it('a stream the upstream refused (REFUSED_STREAM, nothing acted on) is sent again once; a reset after the head is not', async () => {
    // Servers refuse streams above a lowered concurrency limit and, after a GOAWAY, every stream past its
    // last-stream-id; RFC 9113 §8.7 says such a request was not processed and may be retried.
    const token = await fx.mint({ capabilities: ['echo/*'] });
    const retriesBefore = await refusedRetries();
    const seen = (key: string): number =>
      fx.upstream.requests.filter((r) => r.query.includes(`key=${key}`)).length;
    const post = (query: string, body: string): Promise<Response> =>
      fetch(`${fx.baseUrl}/v/echo/refuse?${query}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body,
      });
    const once = await post('times=1&key=p1', '{"replayed":true}');
    expect(once.status).toBe(200);
    const echoed = (await once.json()) as { method: string; body: string };
    expect(echoed).toMatchObject({ method: 'POST', body: '{"replayed":true}' });
    expect(seen('p1')).toBe(2);
    // Each attempt went out whole: auth injected, the body replayed.
    for (const r of fx.upstream.requests.filter((q) => q.query.includes('key=p1'))) {
      expect(r).toMatchObject({ method: 'POST', body: '{"replayed":true}', httpVersion: '2.0' });
      expect(r.headers.authorization).toBe(`Bearer ${ECHO_SECRET}`);
    }

    // A GOAWAY whose last-stream-id is below the call's stream refuses it the same way: sent again, on
    // another connection (the old one is draining).
    const viaGoaway = await post('times=1&key=g1&goaway=1', '{"replayed":true}');
    expect(viaGoaway.status).toBe(200);
    expect(seen('g1')).toBe(2);

    // Refused again: one retry only, then upstream_unreachable (no storm against a server shedding load).
    const twice = await post('times=5&key=p2', '{}');
    expect(twice.status).toBe(502);
    expect(((await twice.json()) as { error: string }).error).toBe('upstream_unreachable');
    expect(seen('p2')).toBe(2);
    // Each of the three calls was sent again once: /metrics shows a server shedding streams.
    expect((await refusedRetries()) - retriesBefore).toBe(3);

    // REFUSED_STREAM after the head: the upstream answered, so it may have acted; never sent again.
    const client = await connect({ socketPath: fx.daemon.socketPath });
    try {
      const before = fx.upstream.requests.length;
      await expect(
        client.invoke({ capability: 'echo/api', request: { method: 'GET', path: '/reset?code=7' } }),
      ).rejects.toMatchObject({ code: 'upstream_unreachable' });
      expect(fx.upstream.requests.length).toBe(before + 1);
    } finally {
      client.close();
    }
  });

  it('a caller that leaves mid-stream cancels its upstream stream', async () => {
    const token = await fx.mint({ capabilities: ['echo/*'] });
    const before = fx.upstream.aborted.count;
    const ac = new AbortController();
    const res = await fetch(`${fx.baseUrl}/v/echo/sse?n=100&interval=100`, {
      headers: { authorization: `Bearer ${token}` },
      signal: ac.signal,
    });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    await reader.read();
    ac.abort();
    expect(await until(() => fx.upstream.aborted.count > before, 5_000)).toBe(true);
  });

  it('a GOAWAY lets open streams finish and moves new calls to a new connection', async () => {
    const token = await fx.mint({ capabilities: ['echo/*'] });
    const get = (path: string): Promise<Response> =>
      fetch(`${fx.baseUrl}/v/echo${path}`, { headers: { authorization: `Bearer ${token}` } });
    const t0 = Date.now();
    const open = await get('/sse?n=4&interval=200');
    const reader = (open.body as ReadableStream<Uint8Array>).getReader();
    let text = Buffer.from((await reader.read()).value ?? []).toString('utf8');
    const before = fx.upstream.connections.count;
    fx.upstream.goAway();
    await new Promise((r) => setTimeout(r, 50));
    const next = await get('/after-goaway');
    expect(next.status).toBe(200);
    expect(((await next.json()) as { httpVersion: string }).httpVersion).toBe('2.0');
    expect(fx.upstream.connections.count).toBe(before + 1);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString('utf8');
    }
    expect(text.match(/data: /g)).toHaveLength(4);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(550);
  });

  it('30 concurrent POST streams share one upstream connection, all at once', async () => {
    await warmToken();
    const before = fx.upstream.connections.count;
    const results = await sseBurst(fx, 30);
    for (const r of results) {
      expect(r.text.match(/data: /g)).toHaveLength(3);
      expect(r.arrivals[0]).toBeLessThan(700); // not queued behind another stream on the connection
    }
    expect(fx.upstream.connections.count).toBe(before);
    expect(fx.upstream.requests.at(-1)).toMatchObject({ method: 'POST', httpVersion: '2.0' });
  });

  it('two callers that stop reading large downloads do not stall the other streams on their connection', async () => {
    const token = await warmToken();
    const before = fx.upstream.connections.count;
    const leave = new AbortController();
    // Each download is far larger than every buffer on the way (the caller's socket, the relay's credit,
    // the h2 stream window), so the upstream stream ends up paused with its window full. HTTP/2 flow control
    // also has a window per connection: if the paused streams' unread bytes count against it for good, every
    // other stream on the connection stops receiving data.
    const stuck = await Promise.all(
      [0, 1].map(() =>
        fetch(`${fx.baseUrl}/v/echo/large?bytes=${64 * 1024 * 1024}`, {
          headers: { authorization: `Bearer ${token}` },
          signal: leave.signal,
        }),
      ),
    );
    try {
      for (const r of stuck) expect(r.status).toBe(200);
      const written = fx.upstream.largeBytesWritten.count;
      // Wait until the upstream cannot write more: both streams are held by flow control.
      let last = -1;
      while (fx.upstream.largeBytesWritten.count !== last) {
        last = fx.upstream.largeBytesWritten.count;
        await new Promise((r) => setTimeout(r, 300));
      }
      expect(last - written).toBeLessThan(2 * 64 * 1024 * 1024);
      const t0 = Date.now();
      const results = await sseBurst(fx, 30);
      for (const r of results) expect(r.text.match(/data: /g)).toHaveLength(3);
      expect(Date.now() - t0).toBeLessThan(5_000);
      // The point of the test: the streams shared the connection the downloads hold.
      expect(fx.upstream.connections.count).toBe(before);
    } finally {
      leave.abort();
    }
  }, 30_000);
});

describe('an h2 upstream that allows 5 streams per connection', () => {
  let lim: HttpFixture;
  beforeAll(async () => {
    lim = await startHttpFixture({
      upstream: { h2: true, h2MaxStreams: 5 },
      env: { AIVAULT_DEV_HTTP1_ONLY: '0' },
    });
  }, 60_000);
  afterAll(() => lim?.close());

  it('gets at most 5 streams per connection: 12 long streams all start at once, over 3 connections', async () => {
    const token = await lim.mint({ capabilities: ['echo/*'] });
    const get = (path: string): Promise<Response> =>
      fetch(`${lim.baseUrl}/v/echo${path}`, { headers: { authorization: `Bearer ${token}` } });
    await (await get('/warm')).text(); // the peer's limit is learned from the first connection's SETTINGS
    const before = lim.upstream.connections.count;
    const t0 = Date.now();
    // Each stream lasts ~1.2 s; had a connection queued streams above the peer's limit, the later ones
    // would start a stream's lifetime late.
    const results = await Promise.all(
      Array.from({ length: 12 }, async () => readTimed(await get('/sse?n=4&interval=400'), t0)),
    );
    for (const r of results) {
      expect(r.text.match(/data: /g)).toHaveLength(4);
      expect(r.arrivals[0]).toBeLessThan(900);
    }
    expect(lim.upstream.connections.count - before).toBe(3);
  });
});

describe('an HTTP/1.1-only upstream with h2 allowed', () => {
  let h1: HttpFixture;
  beforeAll(async () => {
    h1 = await startHttpFixture({ env: { AIVAULT_DEV_HTTP1_ONLY: '0' } });
  }, 60_000);
  afterAll(() => h1?.close());

  it('a cold burst of 20 streams gets 20 connections, each stream starting at once (no pipelining)', async () => {
    const results = await sseBurst(h1, 20);
    for (const r of results) {
      expect(r.text.match(/data: /g)).toHaveLength(3);
      expect(r.arrivals[0]).toBeLessThan(700);
    }
    expect(h1.upstream.requests.at(-1)?.httpVersion).toBe('1.1');
    expect(h1.upstream.connections.count).toBe(20);
  });
});

describe('AIVAULT_DEV_HTTP1_ONLY', () => {
  let h1: HttpFixture;
  beforeAll(async () => {
    h1 = await startHttpFixture({ upstream: { h2: true }, env: { AIVAULT_DEV_HTTP1_ONLY: '1' } });
  }, 60_000);
  afterAll(() => h1?.close());

  it('keeps the upstream on HTTP/1.1 even when it offers h2', async () => {
    const token = await h1.mint({ capabilities: ['echo/api'] });
    const res = await fetch(`${h1.baseUrl}/aivault/proxy`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ capability: 'echo/api', request: { method: 'GET', path: '/h1' } }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { httpVersion: string }).httpVersion).toBe('1.1');
  });
});

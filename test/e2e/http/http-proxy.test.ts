import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../../src/core/protocol/client.js';
import { startHttpFixture, ECHO_SECRET, type HttpFixture } from './http-fixture.js';
import { hashToken, PROXY_TOKEN_PREFIX, tokensPath } from '../../../src/stores/tokens/tokens.js';
import { readFileSync, statSync } from 'node:fs';
import WebSocket from 'ws';
import { largePatternMatches } from '../../support/https-upstream.js';

let fx: HttpFixture;
beforeAll(async () => {
  fx = await startHttpFixture();
}, 60_000);
afterAll(() => fx?.close());

const proxy = (token: string | undefined, envelope: unknown): Promise<Response> =>
  fetch(`${fx.baseUrl}/aivault/proxy`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(envelope),
  });

describe('POST /aivault/proxy', () => {
  it('forwards the envelope with injected auth; the caller never sees the key', async () => {
    const token = await fx.mint({ capabilities: ['echo/api'] });
    const res = await proxy(token, {
      capability: 'echo/api',
      request: { method: 'POST', path: '/hello?x=1', body: 'hi' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-upstream')).toBe('ok');
    const text = await res.text();
    const seen = JSON.parse(text) as {
      path: string;
      query: string;
      body: string;
      headers: Record<string, string>;
    };
    expect(seen.path).toBe('/hello');
    expect(seen.query).toBe('x=1');
    expect(seen.body).toBe('hi');
    // the upstream got the real key (its echo comes back scrubbed) …
    expect(fx.upstream.requests.at(-1)?.headers.authorization).toBe(`Bearer ${ECHO_SECRET}`);
    expect(seen.headers.authorization).toMatch(/^Bearer \[redacted:[A-Z_]+\]$/);
    // … and the proxy token was never forwarded
    expect(text).not.toContain(token);
  });

  it('streams SSE: the first event arrives before the upstream finishes', async () => {
    const token = await fx.mint({ capabilities: ['echo/*'] });
    const t0 = Date.now();
    const res = await proxy(token, {
      capability: 'echo/api',
      request: { method: 'GET', path: '/sse?n=4&interval=250' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const arrivals: number[] = [];
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      arrivals.push(Date.now() - t0);
      text += Buffer.from(value).toString('utf8');
    }
    expect(text.match(/data: /g)).toHaveLength(4);
    expect(Date.now() - t0 - (arrivals[0] as number)).toBeGreaterThanOrEqual(500);
  });

  it('filters auth-class response headers', async () => {
    const token = await fx.mint({ capabilities: ['echo/api'] });
    const res = await proxy(token, {
      capability: 'echo/api',
      request: { method: 'GET', path: '/leaky-headers' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('set-cookie')).toBeNull();
    expect(res.headers.get('authorization')).toBeNull();
    expect(res.headers.get('x-api-key')).toBeNull();
    expect(res.headers.get('x-upstream')).toBe('ok');
    await res.text();
  });

  it('request.url in the envelope is a policy_violation', async () => {
    const token = await fx.mint({ capabilities: ['echo/api'] });
    const res = await proxy(token, {
      capability: 'echo/api',
      request: { method: 'GET', path: '/', url: 'https://evil.test/' },
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toBe('policy_violation');
  });
});

describe('proxy tokens', () => {
  it('are stored hashed in tokens.json (0600), never in clear', async () => {
    const token = await fx.mint({ capabilities: ['echo/api'] });
    expect(token.startsWith(PROXY_TOKEN_PREFIX)).toBe(true);
    const path = tokensPath(fx.config.vaultDir);
    const raw = readFileSync(path, 'utf8');
    expect(raw).not.toContain(token);
    expect(raw).toContain(hashToken(token));
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('missing, forged and unknown tokens are token_invalid', async () => {
    for (const t of [undefined, `${PROXY_TOKEN_PREFIX}${'A'.repeat(43)}`, 'not-a-token']) {
      const res = await proxy(t, { capability: 'echo/api', request: { method: 'GET', path: '/' } });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe('token_invalid');
    }
  });

  it('an expired token is rejected', async () => {
    const { mintProxyToken } = await import('../../../src/stores/tokens/tokens.js');
    const past = Date.now() - 60 * 60 * 1000;
    const { token } = await mintProxyToken(
      fx.config.vaultDir,
      { capabilities: ['echo/api'], ttlMs: 60_000 },
      past,
    );
    const res = await proxy(token, { capability: 'echo/api', request: { method: 'GET', path: '/' } });
    expect(res.status).toBe(401);
    const body = (await res.json()) as { error: string; message: string };
    expect(body.error).toBe('token_invalid');
  });

  it('a capability outside the token scope is rejected', async () => {
    const token = await fx.mint({ capabilities: ['echo/special'] });
    const res = await proxy(token, { capability: 'echo/api', request: { method: 'GET', path: '/x' } });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toBe('policy_violation');
    expect(fx.upstream.requests.some((r) => r.path === '/x')).toBe(false);
  });

  it('credential pinning: a token pinned to one credential cannot use another', async () => {
    const token = await fx.mint({ capabilities: ['echo/api'], credential: 'openai' });
    const res = await proxy(token, { capability: 'echo/api', request: { method: 'GET', path: '/pinned' } });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toBe('policy_violation');
    const ok = await fx.mint({ capabilities: ['echo/api'], credential: 'echo' });
    const res2 = await proxy(ok, { capability: 'echo/api', request: { method: 'GET', path: '/pinned' } });
    expect(res2.status).toBe(200);
    await res2.text();
  });

  it('a proxy token on an operator route gets operator_auth_required', async () => {
    const token = await fx.mint({ capabilities: ['echo/api'] });
    const res = await fetch(`${fx.baseUrl}/aivault/credentials`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toBe('operator_auth_required');
  });

  it('an operator token is not a proxy token', async () => {
    const op = await fx.operator();
    const res = await proxy(op, { capability: 'echo/api', request: { method: 'GET', path: '/' } });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toBe('token_invalid');
  });
});

describe('passthrough /v/{credential}/…', () => {
  it('strips the prefix, picks the most specific capability, consumes the token header', async () => {
    const token = await fx.mint({ capabilities: ['echo/*'] });
    const res = await fetch(`${fx.baseUrl}/v/echo/special/thing?q=1`, {
      headers: { 'x-api-key': token, 'x-custom': 'yes' },
    });
    expect(res.status).toBe(200);
    const seen = (await res.json()) as { path: string; query: string; headers: Record<string, string> };
    expect(seen.path).toBe('/special/thing');
    expect(seen.query).toBe('q=1');
    expect(fx.upstream.requests.at(-1)?.headers.authorization).toBe(`Bearer ${ECHO_SECRET}`);
    expect(seen.headers.authorization).toMatch(/^Bearer \[redacted:[A-Z_]+\]$/);
    expect(seen.headers['x-api-key']).toBeUndefined();
    expect(seen.headers['x-custom']).toBe('yes');
    expect(JSON.stringify(seen)).not.toContain(token);
  });

  it('a small answer with a declared length comes back whole, with a Content-Length of the scrubbed body', async () => {
    // The worker answers such a body in one message (src/request-worker/pipeline/invoke.ts smallWholeBody)
    // instead of head + chunk + end; the client sees a Content-Length, not chunked framing.
    const token = await fx.mint({ capabilities: ['echo/*'] });
    const res = await fetch(`${fx.baseUrl}/v/echo/special/leaky-headers`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    expect(res.headers.get('transfer-encoding')).toBeNull();
    expect(res.headers.get('content-length')).toBe(String(body.byteLength));
    expect(body.toString()).toContain('[redacted:');
    expect(body.toString()).not.toContain(ECHO_SECRET);
  });

  it('a binary request body reaches the upstream byte for byte (raw bytes to the worker, no base64 detour)', async () => {
    const token = await fx.mint({ capabilities: ['echo/*'] });
    const sent = Buffer.concat([Buffer.from([0, 0xff, 0xfe, 0x80, 0x0a]), Buffer.alloc(200_000, 0xc3)]);
    const res = await fetch(`${fx.baseUrl}/v/echo/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
      body: sent,
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    const seen = fx.upstream.requests.at(-1);
    expect(seen?.path).toBe('/upload');
    expect(Buffer.from(seen?.bodyBase64 ?? '', 'base64').equals(sent)).toBe(true);
  });

  it('large bodies streamed at once arrive whole and in order (the worker reuses their chunk buffers)', async () => {
    // Chunks of 16–80 KiB cross from the worker in pooled buffers that come back once uWS has the bytes
    // (src/core/threads/chunk-buffers.ts). Three downloads share one worker's pool, one of them read
    // slowly: a buffer reused before its bytes were written would put another offset's bytes (or another
    // call's) into a body, and the pattern check below finds any such byte.
    const token = await fx.mint({ capabilities: ['echo/*'] });
    const size = 24 * 1024 * 1024;
    const download = async (slow: boolean): Promise<{ total: number; wrong: number }> => {
      const res = await fetch(`${fx.baseUrl}/v/echo/large?bytes=${size}&pattern=1`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(res.status).toBe(200);
      let total = 0;
      let wrong = 0;
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        if (!largePatternMatches(total, chunk)) wrong++;
        total += chunk.byteLength;
        if (slow && total % (4 * 1024 * 1024) < chunk.byteLength) await new Promise((r) => setTimeout(r, 50));
      }
      return { total, wrong };
    };
    const results = await Promise.all([download(false), download(true), download(false)]);
    for (const r of results) expect(r).toEqual({ total: size, wrong: 0 });
  }, 60_000);

  it('a path no granted capability allows is refused before reaching the upstream', async () => {
    const token = await fx.mint({ capabilities: ['echo/special'] });
    const before = fx.upstream.requests.length;
    const res = await fetch(`${fx.baseUrl}/v/echo/elsewhere`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toBe('policy_violation');
    expect(fx.upstream.requests.length).toBe(before);
  });

  it('an unknown credential is credential_not_found', async () => {
    const token = await fx.mint({ capabilities: ['echo/*'] });
    const res = await fetch(`${fx.baseUrl}/v/nope/x`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: string }).error).toBe('credential_not_found');
  });
});

describe('listener', () => {
  it('health names the vault, without auth', async () => {
    const res = await fetch(`${fx.baseUrl}/aivault/health`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { ok: boolean }).ok).toBe(true);
  });

  it('the msgpack protocol is not reachable over TCP, and the unix socket still works', async () => {
    const outcome = await new Promise<string>((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${fx.daemon.http?.port}/`);
      ws.once('open', () => {
        ws.close();
        resolve('open');
      });
      ws.once('unexpected-response', (_req, r) => resolve(`status ${r.statusCode}`));
      ws.once('error', () => resolve('error'));
    });
    expect(outcome).not.toBe('open');
    const client = await connect({ socketPath: fx.daemon.socketPath });
    try {
      const r = await client.invoke({ capability: 'echo/api', request: { method: 'GET', path: '/unix' } });
      expect(r.status).toBe(200);
      // A msgpack bin body (`bodyBytes`) is sent as the raw bytes.
      const bytes = new Uint8Array([0, 0xff, 0x80, 0x0a, 0x41]);
      const posted = await client.invoke({
        capability: 'echo/api',
        request: { method: 'POST', path: '/bin', bodyBytes: bytes },
      });
      expect(posted.status).toBe(200);
      expect(Buffer.from(fx.upstream.requests.at(-1)?.bodyBase64 ?? '', 'base64')).toEqual(
        Buffer.from(bytes),
      );
    } finally {
      client.close();
    }
  });
});

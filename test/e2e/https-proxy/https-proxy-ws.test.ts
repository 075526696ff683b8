/**
 * The HTTPS proxy's long-lived paths against a real in-process aivaultd (`--https-proxy 127.0.0.1:0`) and
 * the local HTTPS mock upstream (dev vault resolving api.openai.com / upstream.test to it):
 * - a real WebSocket client (the `ws` package) through CONNECT then Upgrade: the upstream gets the real key,
 *   the client never sees it (nor its placeholder reaching the upstream); a capability that does not allow
 *   the upgrade (GET) is refused with our JSON error before anything is dialled;
 * - revoking the proxy token closes open tunnels promptly (an SSE stream in flight, a WebSocket with 1008),
 *   and a request on a tunnel opened before the revoke gets 407; locking the vault closes them at once.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { listTokens, revokeToken } from '../../../src/stores/tokens/tokens.js';
import { placeholderValue } from '../../../src/front/https-proxy/connect.js';
import { ECHO_SECRET, OPENAI_SECRET, startHttpFixture, type HttpFixture } from '../http/http-fixture.js';

const basic = (token: string): string => `Basic ${Buffer.from(`aivault:${token}`).toString('base64')}`;

/** CONNECT through the proxy; resolves with the open socket once the proxy answered 200. */
function tunnel(fx: HttpFixture, target: string, token: string): Promise<Socket> {
  const proxy = fx.daemon.httpsProxy;
  if (!proxy) throw new Error('no https proxy');
  return new Promise((resolve, reject) => {
    const s = netConnect(proxy.port, '127.0.0.1');
    let head = '';
    const onData = (d: Buffer): void => {
      head += d.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      s.off('data', onData);
      if (!head.startsWith('HTTP/1.1 200')) {
        s.destroy();
        reject(new Error(`CONNECT refused: ${head.split('\r\n')[0]}`));
        return;
      }
      resolve(s);
    };
    s.on('data', onData);
    s.once('error', reject);
    s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\nProxy-Authorization: ${basic(token)}\r\n\r\n`);
  });
}

/** TLS inside the tunnel, trusting only the vault CA (the client must accept the proxy's leaf). */
function innerTls(fx: HttpFixture, raw: Socket, servername: string): TLSSocket {
  const ca = readFileSync(fx.daemon.httpsProxy?.caCertPath ?? '', 'utf8');
  return tlsConnect({ socket: raw, servername, ca, ALPNProtocols: ['http/1.1'] });
}

/** A `ws` client through the proxy: CONNECT first, then the upgrade over the terminated TLS. */
async function wsThroughProxy(
  fx: HttpFixture,
  url: string,
  token: string,
  opts: { protocols?: string[]; headers?: Record<string, string> } = {},
): Promise<WebSocket> {
  const u = new URL(url);
  const raw = await tunnel(fx, `${u.hostname}:443`, token);
  return new WebSocket(url, opts.protocols ?? [], {
    headers: opts.headers ?? {},
    createConnection: () => innerTls(fx, raw, u.hostname),
    perMessageDeflate: false,
  });
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; binary: boolean }> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data, binary) => resolve({ data: data as Buffer, binary }));
    ws.once('error', reject);
  });
}

/** Resolves once `cond` holds (polled), rejects after `ms`. */
async function until(cond: () => boolean, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The id of the only proxy token with this label. */
async function tokenId(fx: HttpFixture, label: string): Promise<string> {
  const t = (await listTokens(fx.config.vaultDir)).find((i) => i.kind === 'proxy' && i.label === label);
  if (!t) throw new Error(`no token ${label}`);
  return t.id;
}

describe('WebSocket clients through the HTTPS proxy', () => {
  let fx: HttpFixture;
  beforeAll(async () => {
    fx = await startHttpFixture({ httpsProxy: '127.0.0.1:0', testing: { tokenRecheckMs: 100 } });
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
  });

  it('relays a ws client to the upstream with the real key injected; the client never sees it', async () => {
    const token = await fx.mint({ capabilities: ['openai/realtime'] });
    const placeholder = placeholderValue('openai', randomBytes(16).toString('hex'));
    const before = fx.upstream.upgrades.length;
    const ws = await wsThroughProxy(fx, 'wss://api.openai.com/v1/realtime/ws-echo?model=m1', token, {
      // The tool's stand-in key, as a header and as a browser-style subprotocol: both are dropped.
      headers: { authorization: `Bearer ${placeholder}`, 'openai-beta': 'realtime=v1' },
      protocols: ['realtime', `openai-insecure-api-key.${placeholder}`],
    });
    const hello = await nextMessage(ws);
    expect(ws.protocol).toBe('realtime');
    const seen = fx.upstream.upgrades.slice(before);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ path: '/v1/realtime/ws-echo', query: 'model=m1' });
    expect(seen[0]?.headers.authorization).toBe(`Bearer ${OPENAI_SECRET}`);
    expect(seen[0]?.headers['openai-beta']).toBe('realtime=v1');
    expect(seen[0]?.headers['sec-websocket-protocol']).toBe('realtime');
    expect(JSON.stringify(seen)).not.toContain(placeholder);
    expect(JSON.stringify(seen)).not.toContain(token);
    // The upstream echoes the headers it got: the key comes back scrubbed.
    const echoed = JSON.parse(hello.data.toString('utf8')) as { headers: Record<string, string> };
    expect(echoed.headers.authorization).toMatch(/^Bearer \[redacted:[A-Z_]+\]$/);
    expect(hello.data.toString('utf8')).not.toContain(OPENAI_SECRET);

    const text = nextMessage(ws);
    ws.send('hello through the proxy');
    expect(await text).toMatchObject({ binary: false });
    const bin = nextMessage(ws);
    ws.send(Buffer.from([0, 1, 2, 254, 255]));
    const b = await bin;
    expect(b.binary).toBe(true);
    expect([...b.data]).toEqual([0, 1, 2, 254, 255]);
    const closed = new Promise<number>((r) => ws.once('close', (c) => r(c)));
    ws.close(1000);
    expect(await closed).toBe(1000);
    // A finished tunnel is forgotten (not kept for the token re-check until the token expires).
    await until(() => fx.daemon.httpsProxy?.openTunnels() === 0, 5000);
  }, 30_000);

  it('a capability that does not allow the upgrade is refused with our JSON error, nothing dialled', async () => {
    // openai/embeddings allows POST only: the upgrade (a GET) matches no capability the token grants.
    const token = await fx.mint({ capabilities: ['openai/embeddings'] });
    const before = fx.upstream.upgrades.length;
    const ws = await wsThroughProxy(fx, 'wss://api.openai.com/v1/embeddings/ws-echo', token);
    const refused = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      ws.once('open', () => reject(new Error('upgrade was accepted')));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      ws.once('error', () => undefined);
    });
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body)).toMatchObject({ error: 'policy_violation' });
    expect(fx.upstream.upgrades.length).toBe(before);
    ws.terminate();
  }, 30_000);

  it("a WebSocket upgrade carrying another provider's placeholder is refused, never substituted", async () => {
    const token = await fx.mint({ capabilities: ['openai/realtime'] });
    const foreign = placeholderValue('anthropic', randomBytes(16).toString('hex'));
    const before = fx.upstream.upgrades.length;
    const ws = await wsThroughProxy(fx, 'wss://api.openai.com/v1/realtime/ws-echo', token, {
      headers: { 'x-api-key': foreign },
    });
    const refused = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      ws.once('open', () => reject(new Error('upgrade was accepted')));
      ws.once('unexpected-response', (_req, res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      ws.once('error', () => undefined);
    });
    expect(refused.status).toBe(403);
    expect(JSON.parse(refused.body)).toMatchObject({ error: 'policy_violation' });
    expect(refused.body).toContain('placeholder key for anthropic');
    expect(fx.upstream.upgrades.length).toBe(before);
    ws.terminate();
  }, 30_000);

  it('revoking the token closes an open WebSocket with 1008', async () => {
    const token = await fx.mint({ capabilities: ['echo/api'], label: 'ws-revoke' });
    const ws = await wsThroughProxy(fx, 'wss://upstream.test/ws-echo', token);
    const hello = await nextMessage(ws);
    expect(hello.data.toString('utf8')).not.toContain(ECHO_SECRET);
    const closed = new Promise<number>((r) => ws.once('close', (c) => r(c)));
    const t0 = Date.now();
    await revokeToken(fx.config.vaultDir, await tokenId(fx, 'ws-revoke'));
    expect(await closed).toBe(1008);
    expect(Date.now() - t0).toBeLessThan(5000);
  }, 30_000);

  it('revoking the token ends an SSE stream in flight; a new CONNECT with it gets 407', async () => {
    const token = await fx.mint({ capabilities: ['echo/api'], label: 'sse-revoke' });
    const abortedBefore = fx.upstream.aborted.count;
    const raw = await tunnel(fx, 'upstream.test:443', token);
    const events: string[] = [];
    let revokedAt = 0;
    const ended = new Promise<{ events: number; complete: boolean }>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: 'upstream.test',
          path: '/sse?n=200&interval=100',
          // No agent: createConnection supplies the socket (the TLS session inside the tunnel).
          createConnection: () => innerTls(fx, raw, 'upstream.test'),
        },
        (res) => {
          expect(res.statusCode).toBe(200);
          let gotFirst = false;
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            events.push(d);
            if (!gotFirst) {
              gotFirst = true;
              void tokenId(fx, 'sse-revoke').then((id) => revokeToken(fx.config.vaultDir, id), reject);
              revokedAt = Date.now();
            }
          });
          res.once('end', () => resolve({ events: events.length, complete: true }));
          res.once('close', () => resolve({ events: events.length, complete: res.complete }));
          res.once('error', () => resolve({ events: events.length, complete: false }));
        },
      );
      req.once('error', () => resolve({ events: events.length, complete: false }));
      req.end();
    });
    const r = await ended;
    expect(revokedAt).toBeGreaterThan(0);
    // Cut off well before the 200 events (20 s) were sent, within a bounded time of the revoke.
    expect(r.complete).toBe(false);
    expect(Date.now() - revokedAt).toBeLessThan(5000);
    expect(events.join('')).not.toContain(ECHO_SECRET);
    // The worker's upstream call was stopped too, not left streaming into nowhere.
    await until(() => fx.upstream.aborted.count > abortedBefore, 5000);
    await expect(tunnel(fx, 'upstream.test:443', token)).rejects.toThrow(/407/);
  }, 30_000);
});

describe('a tunnel opened before the token was revoked', () => {
  let fx: HttpFixture;
  beforeAll(async () => {
    // A long re-check interval: the tunnel stays open, so its next request meets the per-request check.
    fx = await startHttpFixture({ httpsProxy: '127.0.0.1:0', testing: { tokenRecheckMs: 600_000 } });
  }, 60_000);
  afterAll(async () => {
    await fx?.close();
  });

  it('answers the next request on it with 407 and our JSON error, and never reaches the upstream', async () => {
    const token = await fx.mint({ capabilities: ['echo/api'], label: 'keepalive' });
    const raw = await tunnel(fx, 'upstream.test:443', token);
    const tls = innerTls(fx, raw, 'upstream.test');
    // A keep-alive agent whose only socket is this tunnel's TLS session: both requests go on it.
    const agent = Object.assign(new HttpsAgent({ keepAlive: true, maxSockets: 1 }), {
      createConnection: () => tls,
    });
    onTestFinished(() => agent.destroy());
    const get = (): Promise<{ status: number; body: string; reused: boolean }> =>
      new Promise((resolve, reject) => {
        const req = httpsRequest({ host: 'upstream.test', path: '/hello', agent }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, reused: req.reusedSocket }));
        });
        req.once('error', reject);
        req.end();
      });
    expect((await get()).status).toBe(200);
    const before = fx.upstream.requests.length;
    await revokeToken(fx.config.vaultDir, await tokenId(fx, 'keepalive'));
    const r = await get();
    expect(r.status).toBe(407);
    expect(JSON.parse(r.body)).toMatchObject({ error: 'token_invalid' });
    expect(fx.upstream.requests.length).toBe(before);
    expect(r.reused).toBe(true); // on the tunnel opened before the revoke, not a new CONNECT
  }, 30_000);

  it('locking the vault ends an SSE stream in flight at once (no re-check tick needed)', async () => {
    const token = await fx.mint({ capabilities: ['echo/api'] });
    const raw = await tunnel(fx, 'upstream.test:443', token);
    let lockedAt = 0;
    const r = await new Promise<{ complete: boolean }>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: 'upstream.test',
          path: '/sse?n=200&interval=100',
          createConnection: () => innerTls(fx, raw, 'upstream.test'),
        },
        (res) => {
          res.once('data', () => {
            lockedAt = Date.now();
            fx.daemon.pool.operator('lock').catch(reject);
          });
          res.once('close', () => resolve({ complete: res.complete }));
        },
      );
      req.once('error', () => resolve({ complete: false }));
      req.end();
    });
    expect(lockedAt).toBeGreaterThan(0);
    expect(r.complete).toBe(false);
    expect(Date.now() - lockedAt).toBeLessThan(3000);
    // While locked, a new CONNECT gets no leaf certificate (the CA key is not held any more).
    await expect(tunnel(fx, 'upstream.test:443', token)).rejects.toThrow(/CONNECT refused: HTTP\/1\.1 5\d\d/);
  }, 30_000);
});

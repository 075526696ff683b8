/**
 * A real local HTTPS/WSS server for the `/aivault/ws` attack tests. One server plays both the provider
 * (`realtime.test`) and the attacker's collectors (`evil.test`, `collector.test`): the dev resolver maps
 * all of them to its port and its certificate (signed by the suite's test CA) names all of them, so a
 * relay that were steered to a collector would complete TLS and be RECORDED, never silently fail.
 *
 * Every upgrade attempt and plain request is recorded raw (host, url, headers) before anything else runs,
 * so tests assert what really arrived on the wire. Routes, by the last path segment:
 *   …/echo           accept; first message = JSON {path, query, headers} of the upgrade WITH stored
 *                    secret values replaced by MOCK_REDACTED (a provider reflecting the key is out of
 *                    scope, seed 002; any secret the client then sees is the broker's own leak), then
 *                    echo every message (text stays text, binary stays binary)
 *   …/leaky-101      like echo, but the 101 answer carries the RAW injected authorization in
 *                    x-echo-authorization, set-cookie, authorization and sec-websocket-protocol-ish
 *                    headers: what the relay does with upstream handshake headers is the broker's job
 *   …/refuse         answer the upgrade with 401 whose headers and body reflect the RAW request
 *   …/redirect       answer the upgrade with `?status=` (default 302) and `Location: ?to=`
 *   …/sink           accept, then stop reading the socket (a stalled upstream for flooding)
 *   …/oversized      accept, then send a frame header announcing a 100 MiB message
 *   …/close          accept, then close with `?code=` and `?reason=`
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocketServer, type WebSocket } from 'ws';
import { createTestCa } from '../../support/test-ca.js';
import { MOCK_REDACTED } from './attack-env.js';

export const WS_PROVIDER_HOST = 'realtime.test';
export const WS_COLLECTOR_HOSTS = ['evil.test', 'collector.test'] as const;

export interface RawUpgrade {
  /** Host header without the port. */
  readonly host: string;
  readonly url: string;
  readonly headers: Record<string, string | string[] | undefined>;
  /** True for a WebSocket upgrade, false for a plain HTTPS request. */
  readonly upgrade: boolean;
}

export interface UpstreamConnection {
  readonly path: string;
  /** Close code + reason the relay sent (or 1006 when the TCP connection just went away). */
  readonly closed: Promise<{ code: number; reason: string }>;
  /** Messages the upstream received from the relay. */
  readonly received: { data: Buffer; binary: boolean }[];
  /** Start reading again (the `sink` route stops; a paused socket never notices the relay closing). */
  resume(): void;
}

export interface WssUpstream {
  readonly port: number;
  readonly server: Server;
  /** Everything that reached the server, in arrival order, unredacted. */
  readonly raw: RawUpgrade[];
  /** Accepted WebSocket connections, in order. */
  readonly connections: UpstreamConnection[];
  /** Raw records whose Host was `host`. */
  hits(host: string): RawUpgrade[];
  close(): Promise<void>;
}

/** A server certificate for `hosts`, signed by the suite's test CA (the CA the dev vault trusts). */
function serverCertFor(hosts: readonly string[]): { cert: string; key: string } {
  const ca = createTestCa();
  const dir = mkdtempSync(join(tmpdir(), 'aivault-wss-cert-'));
  const run = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  writeFileSync(
    join(dir, 'server.ext'),
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' +
      `subjectAltName=${hosts.map((h) => `DNS:${h}`).join(',')}\n`,
  );
  run(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ec.key']);
  run(['pkcs8', '-topk8', '-nocrypt', '-in', 'ec.key', '-out', 'server.key']);
  run(['req', '-new', '-key', 'server.key', '-subj', `/CN=${hosts[0] ?? 'wss'}`, '-out', 'server.csr']);
  run([
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    join(ca.dir, 'ca.pem'),
    '-CAkey',
    join(ca.dir, 'ca.key'),
    '-CAserial',
    join(dir, 'ca.srl'),
    '-CAcreateserial',
    '-days',
    '2',
    '-sha256',
    '-extfile',
    'server.ext',
    '-out',
    'server.pem',
  ]);
  return {
    cert: readFileSync(join(dir, 'server.pem'), 'utf8'),
    key: readFileSync(join(dir, 'server.key'), 'utf8'),
  };
}

function hostOf(req: IncomingMessage): string {
  return String(req.headers.host ?? '').replace(/:\d+$/, '');
}

function firstString(v: string | string[] | undefined): string {
  return Array.isArray(v) ? (v[0] ?? '') : (v ?? '');
}

/**
 * Start the server. `secrets()` returns the stored secret values the echo route must scrub (read at each
 * echo, so secrets created after start are covered).
 */
export async function startWssUpstream(secrets: () => readonly string[]): Promise<WssUpstream> {
  const { cert, key } = serverCertFor([WS_PROVIDER_HOST, ...WS_COLLECTOR_HOSTS]);
  const raw: RawUpgrade[] = [];
  const connections: UpstreamConnection[] = [];
  const scrub = (text: string): string => {
    let out = text;
    for (const s of secrets()) {
      for (const enc of [s, encodeURIComponent(s), Buffer.from(s).toString('base64')]) {
        out = out.split(enc).join(MOCK_REDACTED);
      }
    }
    return out;
  };
  const server = createServer({ cert, key }, (req, res) => {
    raw.push({ host: hostOf(req), url: req.url ?? '', headers: { ...req.headers }, upgrade: false });
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('no such route');
  });
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  const rawSockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    rawSockets.add(s);
    s.on('close', () => rawSockets.delete(s));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    raw.push({ host: hostOf(req), url: req.url ?? '', headers: { ...req.headers }, upgrade: true });
    const url = new URL(req.url ?? '/', 'https://wss.invalid');
    const route = url.pathname.split('/').pop() ?? '';
    const auth = firstString(req.headers.authorization);
    if (route === 'refuse') {
      const body = JSON.stringify({ url: req.url, headers: req.headers });
      socket.end(
        'HTTP/1.1 401 Unauthorized\r\n' +
          `WWW-Authenticate: Bearer realm="echo", token="${auth}"\r\n` +
          `X-Echo-Authorization: ${auth}\r\n` +
          `Set-Cookie: sid=${encodeURIComponent(auth)}\r\n` +
          'Content-Type: application/json\r\n' +
          `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
      );
      return;
    }
    if (route === 'redirect') {
      const status = Number(url.searchParams.get('status') ?? '302');
      socket.end(
        `HTTP/1.1 ${status} Redirect\r\nLocation: ${url.searchParams.get('to') ?? `wss://${WS_COLLECTOR_HOSTS[0]}/`}\r\n` +
          'Content-Length: 0\r\n\r\n',
      );
      return;
    }
    const leaky = route === 'leaky-101';
    const onHeaders = (headers: string[]): void => {
      headers.push(
        `X-Echo-Authorization: ${auth}`,
        `Authorization: ${auth}`,
        `Set-Cookie: sid=${encodeURIComponent(auth)}`,
        `X-Api-Key: ${auth.replace(/^Bearer /, '')}`,
      );
    };
    if (leaky) wss.once('headers', onHeaders);
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const received: { data: Buffer; binary: boolean }[] = [];
      const closed = new Promise<{ code: number; reason: string }>((resolve) =>
        ws.on('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') })),
      );
      connections.push({ path: url.pathname, closed, received, resume: () => ws.resume() });
      ws.on('error', () => undefined);
      ws.on('message', (data, binary) => {
        const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
        received.push({ data: buf, binary });
        if (route === 'echo' || leaky) ws.send(buf, { binary });
      });
      switch (route) {
        case 'sink':
          ws.pause(); // stop reading: TCP backpressure reaches the relay
          return;
        case 'oversized': {
          const h = Buffer.alloc(10);
          h[0] = 0x82; // FIN + binary, unmasked (server → client)
          h[1] = 127;
          h.writeBigUInt64BE(BigInt(100 * 1024 * 1024), 2);
          socket.write(Buffer.concat([h, Buffer.alloc(4096, 0x61)]));
          return;
        }
        case 'close':
          ws.close(Number(url.searchParams.get('code') ?? '1000'), url.searchParams.get('reason') ?? '');
          return;
        default:
          ws.send(
            scrub(
              JSON.stringify({
                path: url.pathname,
                query: url.search.replace(/^\?/, ''),
                headers: req.headers,
              }),
            ),
          );
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    server,
    raw,
    connections,
    hits: (host) => raw.filter((r) => r.host === host),
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        for (const s of rawSockets) s.destroy();
        wss.close();
        server.close(() => resolve());
      }),
  };
}

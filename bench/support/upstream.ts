/**
 * The bench's own HTTPS upstream (run as a child process, so it never shares an event loop with a load
 * generator): node:https with keep-alive on 127.0.0.1, throwaway test CA (test/support/test-ca.ts).
 * Routes, by path suffix (any prefix works, so capability path prefixes pass):
 *   …/sse?n=N&interval=M   N server-sent events M ms apart; the first one at once. Each event carries
 *                          `t` = the upstream's Date.now() when it was written (for delivery delay).
 *   …/large?bytes=N        N bytes streamed in 64 KiB chunks (honours backpressure)
 *   anything else          a fixed 1 KiB JSON reply
 * Prints one JSON line `{"port":…,"caCertPath":…}` on stdout when listening.
 * `--h2`: serve HTTP/2 as well (ALPN h2, HTTP/1.1 still accepted; node:http2's compatibility API), as the
 * large providers do, so the `open` section can show what a multiplexed upstream costs the daemon.
 */
import { createServer } from 'node:https';
import { createSecureServer } from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTestCa } from '../../test/support/test-ca.js';

const ca = createTestCa();

/** Exactly 1024 bytes of JSON. */
function makeJsonReply(): Buffer {
  const base = { id: 'chatcmpl-bench', object: 'chat.completion', model: 'gpt-bench', pad: '' };
  const len = Buffer.byteLength(JSON.stringify(base));
  base.pad = 'x'.repeat(1024 - len);
  const out = Buffer.from(JSON.stringify(base));
  if (out.length !== 1024) throw new Error(`json reply is ${out.length} bytes`);
  return out;
}
const JSON_REPLY = makeJsonReply();
const LARGE_CHUNK = Buffer.alloc(64 * 1024, 0x61);

function sse(res: ServerResponse, n: number, interval: number): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.flushHeaders();
  let i = 0;
  let timer: NodeJS.Timeout | undefined;
  const tick = (): void => {
    res.write(`data: {"event":${i},"t":${Date.now()}}\n\n`);
    i++;
    if (i >= n) res.end();
    else timer = setTimeout(tick, interval);
  };
  setImmediate(tick);
  res.on('close', () => clearTimeout(timer));
}

function large(res: ServerResponse, total: number): void {
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(total) });
  let sent = 0;
  const pump = (): void => {
    while (sent < total) {
      const n = Math.min(LARGE_CHUNK.length, total - sent);
      sent += n;
      if (!res.write(n === LARGE_CHUNK.length ? LARGE_CHUNK : LARGE_CHUNK.subarray(0, n))) {
        res.once('drain', pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

const handler = (req: IncomingMessage, res: ServerResponse): void => {
  req.resume(); // the bench never needs the request body
  req.on('end', () => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const params = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    if (path.endsWith('/sse')) {
      return sse(res, Number(params.get('n') ?? '3'), Number(params.get('interval') ?? '100'));
    }
    if (path.endsWith('/large')) return large(res, Number(params.get('bytes') ?? String(1 << 20)));
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1024' });
    res.end(JSON_REPLY);
  });
};

const tls = { cert: ca.serverCert, key: ca.serverKey };
function http1Server(): ReturnType<typeof createServer> {
  const s = createServer({ ...tls, keepAlive: true }, handler);
  s.keepAliveTimeout = 120_000;
  s.headersTimeout = 125_000;
  s.maxRequestsPerSocket = 0;
  return s;
}
// node:http2 has no keep-alive or request-count limits to lift (and no idle timeout by default).
const server = process.argv.includes('--h2')
  ? createSecureServer({ ...tls, allowHTTP1: true }, handler as never)
  : http1Server();
server.listen(Number(process.env.BENCH_UPSTREAM_PORT ?? 0), '127.0.0.1', () => {
  const port = (server.address() as AddressInfo).port;
  process.stdout.write(`${JSON.stringify({ port, caCertPath: ca.caCertPath })}\n`);
});
process.on('SIGTERM', () => process.exit(0));

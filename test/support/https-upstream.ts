/**
 * A real HTTPS upstream for e2e tests (node:https on 127.0.0.1:0 with the test CA's cert). By default it
 * ECHOES what it received as JSON: {method, path, query, headers, body, bodyBase64, clientCertCn}, so tests
 * assert exactly what the upstream saw. Routes (by path suffix, so any allowed prefix works):
 *   …/sse?n=N&interval=M     N server-sent events M ms apart
 *   …/large?bytes=N          N bytes streamed in 64 KiB chunks (honours backpressure)
 *   …/redirect?to=URL        302 to URL
 *   …/leaky-headers          set-cookie, authorization, www-authenticate, x-api-key + x-upstream: ok
 *   …/stall                  headers never sent
 *   …/reset                  headers + some body, then the socket is destroyed
 *   …/status/NNN             that status with the echo body
 *   …/oauth/token            OAuth2 token endpoint issuing at-1, at-2, …
 *   …/needs-token            401 unless the bearer is the required/latest token
 * Every request is recorded in `requests`; `aborted` counts responses the client abandoned mid-way.
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { createTestCa } from './test-ca.js';

export interface SeenRequest {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  bodyBase64: string;
  clientCertCn: string | null;
}

export interface HttpsUpstream {
  readonly server: Server;
  readonly port: number;
  readonly requests: SeenRequest[];
  /** Responses whose client went away before the body finished. */
  readonly aborted: { count: number };
  /** Bytes written by /large responses (to see a slow client pause the upstream). */
  readonly largeBytesWritten: { count: number };
  /** OAuth2 token endpoint (`…/oauth/token`) state: tokens issued are `at-1`, `at-2`, …; `…/needs-token`
   * answers 401 unless the request carries `Bearer at-<required ?? latest>`. */
  readonly tokens: { issued: number; required?: number };
  close(): Promise<void>;
}

function writeLarge(
  res: ServerResponse,
  total: number,
  counter: { count: number },
  aborted: { count: number },
): void {
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  let sent = 0;
  let finished = false;
  res.on('close', () => {
    if (!finished) aborted.count++;
  });
  const pump = (): void => {
    while (sent < total) {
      const n = Math.min(chunk.length, total - sent);
      sent += n;
      counter.count += n;
      if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
        res.once('drain', pump);
        return;
      }
    }
    finished = true;
    res.end();
  };
  pump();
}

/**
 * The echo body. A request with `x-echo-headers: omit` gets no headers back, so tests can print the raw
 * body through the CLI (whose leak check would otherwise trip on the reflected Authorization header).
 */
function echoBody(seen: SeenRequest): string {
  if (seen.headers['x-echo-headers'] === 'omit') {
    const { headers: _omitted, ...rest } = seen;
    return JSON.stringify(rest);
  }
  return JSON.stringify(seen);
}

export async function startHttpsUpstream(): Promise<HttpsUpstream> {
  const ca = createTestCa();
  const requests: SeenRequest[] = [];
  const aborted = { count: 0 };
  const largeBytesWritten = { count: 0 };
  const tokens: HttpsUpstream['tokens'] = { issued: 0 };
  const server = createServer(
    { cert: ca.serverCert, key: ca.serverKey, ca: ca.caCert, requestCert: true, rejectUnauthorized: false },
    (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'https://upstream.invalid');
        const body = Buffer.concat(chunks);
        const peer = (req.socket as TLSSocket).getPeerCertificate?.();
        const seen: SeenRequest = {
          method: req.method ?? '',
          path: url.pathname,
          query: url.search.replace(/^\?/, ''),
          headers: { ...req.headers },
          body: body.toString('utf8'),
          bodyBase64: body.toString('base64'),
          clientCertCn: peer && typeof peer.subject?.CN === 'string' ? peer.subject.CN : null,
        };
        requests.push(seen);
        const p = url.pathname;
        const q = url.searchParams;
        if (p.endsWith('/oauth/token')) {
          tokens.issued++;
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({ access_token: `at-${tokens.issued}`, expires_in: 3600, token_type: 'bearer' }),
          );
          return;
        }
        if (p.endsWith('/needs-token')) {
          const ok = req.headers.authorization === `Bearer at-${tokens.required ?? tokens.issued}`;
          res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
          res.end(echoBody(seen));
          return;
        }
        if (p.endsWith('/sse')) {
          const n = Number(q.get('n') ?? '3');
          const interval = Number(q.get('interval') ?? '200');
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
          let i = 0;
          const tick = (): void => {
            res.write(`data: {"event":${i},"t":${Date.now()}}\n\n`);
            i++;
            if (i >= n) res.end();
            else timer = setTimeout(tick, interval);
          };
          let timer = setTimeout(tick, 0);
          res.on('close', () => {
            if (i < n) aborted.count++;
            clearTimeout(timer);
          });
          return;
        }
        if (p.endsWith('/large')) {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          writeLarge(res, Number(q.get('bytes') ?? String(1024 * 1024)), largeBytesWritten, aborted);
          return;
        }
        if (p.endsWith('/redirect')) {
          res.writeHead(302, { location: q.get('to') ?? 'https://other.test/' });
          res.end();
          return;
        }
        if (p.endsWith('/leaky-headers')) {
          res.setHeader('set-cookie', ['session=upstream-cookie; HttpOnly', 'other=1']);
          res.setHeader('authorization', 'Bearer upstream-leak');
          res.setHeader('www-authenticate', 'Bearer realm="x"');
          res.setHeader('x-api-key', 'upstream-key');
          res.setHeader('proxy-authenticate', 'Basic');
          res.setHeader('x-upstream', 'ok');
          res.setHeader('content-type', 'application/json');
          res.end(echoBody(seen));
          return;
        }
        if (p.endsWith('/stall')) {
          res.on('close', () => aborted.count++);
          return;
        }
        if (p.endsWith('/reset')) {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          res.write(Buffer.alloc(1024, 0x62));
          setTimeout(() => req.socket.destroy(), 50);
          return;
        }
        const status = /\/status\/(\d{3})$/.exec(p);
        res.writeHead(status ? Number(status[1]) : 200, {
          'content-type': 'application/json',
          'x-upstream': 'ok',
        });
        res.end(echoBody(seen));
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    requests,
    aborted,
    largeBytesWritten,
    tokens,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

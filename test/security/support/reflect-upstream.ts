/**
 * An upstream that REFLECTS the key it receives (`Authorization: Bearer <key>`), the way error pages, debug
 * endpoints and echo tools do: in the body (raw, base64, base64url, hex, percent-encoded, JSON-escaped), in
 * a response header, in an error body, inside an SSE stream split across two writes, and in WebSocket
 * messages and the close reason. Unlike the attack env's echo mock, nothing is masked here: whatever the
 * caller receives of the key is the broker's leak. Routes (path):
 *   /r/body?form=F   200 text/plain `before|<F(key)>|after`
 *   /r/header        200, headers x-echo: <key> and x-echo-b64: base64(key), body `header-ok`
 *   /r/error         401 application/json `{"error":"invalid api key <key>","hint":"rotate it"}`
 *   /r/sse           SSE: `data: first` and the start of `data: token=<key>`; then waits for the gate
 *                    (opened by the test once it saw `first`, 300 ms at least, 10 s at most) and writes
 *                    the rest of the key, then `data: last`
 *   /r/ws            WebSocket: one text message per form, one binary message with the raw key, then
 *                    close(1000, `bye <key>`)
 */
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { issueServerCert } from '../../support/test-ca.js';

export const REFLECT_HOST = 'reflect.test';

/** Every encoding the upstream reflects, by name. */
export function reflectForms(key: string): Record<string, string> {
  const b = Buffer.from(key, 'utf8');
  return {
    raw: key,
    base64: b.toString('base64'),
    base64url: b.toString('base64url'),
    hex: b.toString('hex'),
    HEX: b.toString('hex').toUpperCase(),
    percent: encodeURIComponent(key),
    json: JSON.stringify(key).slice(1, -1),
  };
}

export interface ReflectUpstream {
  readonly port: number;
  /** SSE gate of the current /r/sse response. */
  readonly sse: { secondWritten: boolean; open(): void };
  close(): Promise<void>;
}

function keyOf(req: IncomingMessage): string {
  const auth = String(req.headers.authorization ?? '');
  return auth.startsWith('Bearer ') ? auth.slice('Bearer '.length) : auth;
}

export async function startReflectUpstream(): Promise<ReflectUpstream> {
  const sse = { secondWritten: false, open: (): void => undefined };
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? '/', 'https://reflect.test');
    const key = keyOf(req);
    switch (url.pathname) {
      case '/r/body': {
        const form = reflectForms(key)[url.searchParams.get('form') ?? 'raw'] ?? key;
        res.writeHead(200, { 'content-type': 'text/plain' }).end(`before|${form}|after`);
        return;
      }
      case '/r/header':
        res
          .writeHead(200, {
            'content-type': 'text/plain',
            'x-echo': key,
            'x-echo-b64': Buffer.from(key).toString('base64'),
          })
          .end('header-ok');
        return;
      case '/r/error':
        res
          .writeHead(401, { 'content-type': 'application/json' })
          .end(JSON.stringify({ error: `invalid api key ${key}`, hint: 'rotate it' }));
        return;
      case '/r/sse': {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        sse.secondWritten = false;
        res.write(`data: first\n\ndata: token=${key.slice(0, 6)}`);
        let done = false;
        const second = (): void => {
          if (done) return;
          done = true;
          sse.secondWritten = true;
          res.end(`${key.slice(6)}\n\ndata: last\n\n`);
        };
        const minDelay = new Promise((r) => setTimeout(r, 300));
        const gate = new Promise<void>((r) => (sse.open = r));
        void Promise.all([minDelay, gate]).then(second);
        setTimeout(second, 10_000).unref();
        return;
      }
      default:
        res.writeHead(404).end('no route');
    }
  };
  const server: Server = createServer(issueServerCert([REFLECT_HOST]), handle);
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket, head) => {
    const key = keyOf(req);
    wss.handleUpgrade(req, socket, head, (ws) => {
      for (const [name, form] of Object.entries(reflectForms(key))) ws.send(`${name}:${form}`);
      ws.send(Buffer.from(`bin:${key}`), { binary: true });
      ws.close(1000, `bye ${key}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    sse,
    async close() {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

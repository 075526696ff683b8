/**
 * A real HTTPS upstream for e2e tests (node:https on 127.0.0.1:0 with the test CA's cert). By default it
 * ECHOES what it received as JSON: {method, path, query, headers, body, bodyBase64, clientCertCn}, so tests
 * assert exactly what the upstream saw. Routes (by path suffix, so any allowed prefix works):
 *   …/sse?n=N&interval=M     N server-sent events M ms apart
 *   …/large?bytes=N          N bytes streamed in 64 KiB chunks (honours backpressure); all 'a', or with
 *                            `&pattern=1` byte i = i mod 251 (a relay that reorders, drops or duplicates
 *                            bytes shows; see largePatternMatches)
 *   …/redirect?to=URL        302 to URL
 *   …/leaky-headers          set-cookie, authorization, www-authenticate, x-api-key + x-upstream: ok
 *   …/stall                  headers never sent
 *   …/reset                  headers + some body, then the socket is destroyed (h2: `?code=N` resets the
 *                            stream with RST_STREAM code N)
 *   …/refuse?times=N&key=K   h2: the first N requests with key K are refused (RST_STREAM REFUSED_STREAM;
 *                            `&goaway=1`: by a GOAWAY whose last-stream-id is below theirs)
 *   …/status/NNN             that status with the echo body
 *   …/oauth/token            OAuth2 token endpoint issuing at-1, at-2, … (also any `tokenPaths` option path;
 *                            `tokens.mode` 'down' resets the connection, 'error' answers 503;
 *                            `tokens.delayMs` delays the answer)
 *   …/needs-token            401 unless the bearer is the required/latest token
 *   POST …/v1/chat/completions   OpenAI-shaped chat completion JSON, or SSE chunks when `"stream": true`
 *   POST …/v1/messages           Anthropic-shaped message JSON, or SSE events when `"stream": true`
 *   WebSocket upgrade …/ws-echo  first message: JSON {path, query, headers} of the upgrade, then echoes
 *                                every message (text stays text, binary stays binary)
 * Every request is recorded in `requests`; `aborted` counts responses the client abandoned mid-way.
 */
import { createServer, type Server } from 'node:https';
import {
  createSecureServer,
  type Http2SecureServer,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { WebSocketServer } from 'ws';
import { createTestCa } from './test-ca.js';

export interface SeenRequest {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  bodyBase64: string;
  clientCertCn: string | null;
  /** '1.1' or '2.0' (an `h2` upstream still answers HTTP/1.1 clients). */
  httpVersion: string;
}

export interface HttpsUpstream {
  readonly server: Server | Http2SecureServer;
  readonly port: number;
  /** TLS connections accepted so far (an h2 client multiplexes many requests over one). */
  readonly connections: { count: number };
  /** h2: send GOAWAY on every open session (a graceful restart: open streams finish, no new ones). */
  goAway(): void;
  readonly requests: SeenRequest[];
  /** WebSocket upgrades the upstream accepted (…/ws-echo): path, query and headers as received. */
  readonly upgrades: {
    path: string;
    query: string;
    headers: Record<string, string | string[] | undefined>;
  }[];
  /** Responses whose client went away before the body finished. */
  readonly aborted: { count: number };
  /** Bytes written by /large responses (to see a slow client pause the upstream). */
  readonly largeBytesWritten: { count: number };
  /** …/ws-echo connections: messages received (each is echoed at once). */
  readonly wsEcho: {
    readonly received: number;
    /**
     * Every open echo socket has handed all its echoes to the kernel, or its reader stopped reading (the
     * kernel's send buffer is full): nothing more moves toward the client until the client reads. Lets a
     * test that pauses its client wait for the relay to be loaded instead of sleeping.
     */
    settled(): boolean;
  };
  /** OAuth2 token endpoint (`…/oauth/token`) state: tokens issued are `at-1`, `at-2`, …; `…/needs-token`
   * answers 401 unless the request carries `Bearer at-<required ?? latest>`. */
  readonly tokens: {
    issued: number;
    required?: number;
    /** Token requests received (including failed ones). */
    attempts?: number;
    mode?: 'ok' | 'down' | 'error';
    delayMs?: number;
    /** expires_in of issued tokens (default 3600). */
    expiresIn?: number;
  };
  close(): Promise<void>;
}

export interface HttpsUpstreamOptions {
  /** Server certificate + key (PEM) to serve instead of the test CA's default server cert. */
  readonly cert?: string;
  readonly key?: string;
  /** Exact paths that also act as the OAuth2 token endpoint (e.g. `/api/token`). */
  readonly tokenPaths?: readonly string[];
  /**
   * Serve HTTP/2 (ALPN `h2`, HTTP/1.1 still accepted) through node:http2's compatibility API, as OpenAI and
   * Anthropic do. Same routes; `…/reset` and a `down` token endpoint reset the one stream (RST_STREAM), the
   * h2 form of a dropped connection. No WebSocket upgrades.
   */
  readonly h2?: boolean;
  /** With `h2`: the SETTINGS_MAX_CONCURRENT_STREAMS the server announces (Node's default: no limit). */
  readonly h2MaxStreams?: number;
}

/** Byte `i` of a `/large?pattern=1` body is i mod 251 (prime: no chunk or fragment size lines up with it). */
const PATTERN = Buffer.from(Uint8Array.from({ length: 64 * 1024 + 251 }, (_, i) => i % 251));

/** Whether `chunk`, found at byte `offset` of a `/large?pattern=1` body, holds the right bytes. */
export function largePatternMatches(offset: number, chunk: Uint8Array): boolean {
  const bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  for (let at = 0; at < bytes.byteLength; at += 64 * 1024) {
    const n = Math.min(64 * 1024, bytes.byteLength - at);
    const start = (offset + at) % 251;
    if (!bytes.subarray(at, at + n).equals(PATTERN.subarray(start, start + n))) return false;
  }
  return true;
}

function writeLarge(
  res: ServerResponse,
  total: number,
  counter: { count: number },
  aborted: { count: number },
  pattern = false,
): void {
  const plain = Buffer.alloc(64 * 1024, 0x61);
  let sent = 0;
  let finished = false;
  res.on('close', () => {
    if (!finished) aborted.count++;
  });
  const pump = (): void => {
    while (sent < total) {
      const n = Math.min(plain.length, total - sent);
      const chunk = pattern ? PATTERN.subarray(sent % 251, (sent % 251) + n) : plain.subarray(0, n);
      sent += n;
      counter.count += n;
      if (!res.write(chunk)) {
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

export async function startHttpsUpstream(opts: HttpsUpstreamOptions = {}): Promise<HttpsUpstream> {
  const ca = createTestCa();
  const requests: SeenRequest[] = [];
  const aborted = { count: 0 };
  const largeBytesWritten = { count: 0 };
  const tokens: HttpsUpstream['tokens'] = { issued: 0 };
  const tlsOptions = {
    cert: opts.cert ?? ca.serverCert,
    key: opts.key ?? ca.serverKey,
    ca: ca.caCert,
    requestCert: true,
    rejectUnauthorized: false,
  };
  const connections = { count: 0 };
  const refused = new Map<string, number>();
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
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
        httpVersion: req.httpVersion,
      };
      requests.push(seen);
      const p = url.pathname;
      const q = url.searchParams;
      if (p.endsWith('/oauth/token') || (opts.tokenPaths?.includes(p) ?? false)) {
        tokens.attempts = (tokens.attempts ?? 0) + 1;
        if (tokens.mode === 'down') {
          req.socket.destroy();
          return;
        }
        const answer = (): void => {
          if (tokens.mode === 'error') {
            res.writeHead(503, { 'content-type': 'text/plain' });
            res.end('token service unavailable');
            return;
          }
          tokens.issued++;
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(
            JSON.stringify({
              access_token: `at-${tokens.issued}`,
              expires_in: tokens.expiresIn ?? 3600,
              token_type: 'bearer',
            }),
          );
        };
        if (tokens.delayMs) setTimeout(answer, tokens.delayMs);
        else answer();
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
        writeLarge(
          res,
          Number(q.get('bytes') ?? String(1024 * 1024)),
          largeBytesWritten,
          aborted,
          q.get('pattern') === '1',
        );
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
      if (p.endsWith('/refuse')) {
        // h2 only: the first `times` requests with this `key` are refused (RST_STREAM REFUSED_STREAM before
        // any header: the server promises it did not act on them), the next ones get the echo.
        const key = q.get('key') ?? '';
        const n = refused.get(key) ?? 0;
        const stream = (req as unknown as { stream?: ServerHttp2Stream }).stream;
        if (stream && n < Number(q.get('times') ?? '1')) {
          refused.set(key, n + 1);
          // `?goaway=1`: refuse it the other way, a GOAWAY whose last-stream-id is below this stream's.
          if (q.get('goaway') === '1') stream.session?.goaway(0, Math.max(0, (stream.id ?? 1) - 2));
          else stream.close(7);
          return;
        }
      }
      if (p.endsWith('/reset')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.write(Buffer.alloc(1024, 0x62));
        // h2 only: `?code=N` resets the stream with that RST_STREAM code (0 NO_ERROR, 2 INTERNAL, 8 CANCEL).
        const code = q.get('code');
        const stream = (req as unknown as { stream?: ServerHttp2Stream }).stream;
        setTimeout(() => {
          if (code !== null && stream) stream.close(Number(code));
          else req.socket.destroy();
        }, 50);
        return;
      }
      if (req.method === 'POST' && p.endsWith('/v1/chat/completions')) {
        writeOpenAiChat(res, body);
        return;
      }
      if (req.method === 'POST' && p.endsWith('/v1/messages')) {
        writeAnthropicMessage(res, body);
        return;
      }
      const status = /\/status\/(\d{3})$/.exec(p);
      res.writeHead(status ? Number(status[1]) : 200, {
        'content-type': 'application/json',
        'x-upstream': 'ok',
      });
      res.end(echoBody(seen));
    });
  };
  // The compatibility API hands the same handler request/response objects shaped like node:http's.
  const h2Sessions = new Set<ServerHttp2Session>();
  const server: Server | Http2SecureServer = opts.h2
    ? createSecureServer(
        {
          ...tlsOptions,
          allowHTTP1: true,
          ...(opts.h2MaxStreams !== undefined
            ? { settings: { maxConcurrentStreams: opts.h2MaxStreams } }
            : {}),
        },
        handler as never,
      )
    : createServer(tlsOptions, handler);
  server.on('secureConnection', () => connections.count++);
  if (opts.h2) {
    server.on('session', (session: ServerHttp2Session) => {
      h2Sessions.add(session);
      session.on('close', () => h2Sessions.delete(session));
    });
  }
  const upgrades: HttpsUpstream['upgrades'] = [];
  const wss = new WebSocketServer({ noServer: true });
  let wsReceived = 0;
  const wsEcho: HttpsUpstream['wsEcho'] = {
    get received() {
      return wsReceived;
    },
    settled: () =>
      [...wss.clients].every(
        (c) =>
          c.bufferedAmount === 0 ||
          // ws keeps its net.Socket private; writableNeedDrain = the kernel refused more.
          (c as unknown as { _socket: Socket })._socket.writableNeedDrain,
      ),
  };
  server.on('upgrade', (req: IncomingMessage, socket, head) => {
    const url = new URL(req.url ?? '/', 'https://upstream.invalid');
    if (!url.pathname.endsWith('/ws-echo')) {
      socket.destroy();
      return;
    }
    upgrades.push({ path: url.pathname, query: url.search.replace(/^\?/, ''), headers: { ...req.headers } });
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send(
        JSON.stringify({
          path: url.pathname,
          query: url.search.replace(/^\?/, ''),
          headers: { ...req.headers },
        }),
      );
      ws.on('message', (data, isBinary) => {
        wsReceived++;
        ws.send(data, { binary: isBinary });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    connections,
    goAway: () => {
      for (const session of h2Sessions) session.close();
    },
    requests,
    upgrades,
    aborted,
    largeBytesWritten,
    wsEcho,
    tokens,
    close: () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close();
        for (const session of h2Sessions) session.destroy();
        if ('closeAllConnections' in server) server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function parseJsonBody(body: Buffer): Record<string, unknown> {
  try {
    const v = JSON.parse(body.toString('utf8')) as unknown;
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** OpenAI chat completion (JSON, or SSE `chat.completion.chunk`s ending with `[DONE]`). */
function writeOpenAiChat(res: ServerResponse, body: Buffer): void {
  const req = parseJsonBody(body);
  const model = typeof req.model === 'string' ? req.model : 'gpt-test';
  const created = Math.floor(Date.now() / 1000);
  if (req.stream === true) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const words = ['Hello', ' from', ' the', ' mock'];
    words.forEach((w, i) => {
      const chunk = {
        id: 'chatcmpl-mock',
        object: 'chat.completion.chunk',
        created,
        model,
        choices: [
          {
            index: 0,
            delta: i === 0 ? { role: 'assistant', content: w } : { content: w },
            finish_reason: null,
          },
        ],
      };
      res.write(`data: ${JSON.stringify(chunk)}\n\n`);
    });
    const last = {
      id: 'chatcmpl-mock',
      object: 'chat.completion.chunk',
      created,
      model,
      choices: [{ index: 0, delta: {}, finish_reason: 'stop' }],
    };
    res.write(`data: ${JSON.stringify(last)}\n\n`);
    res.end('data: [DONE]\n\n');
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(
    JSON.stringify({
      id: 'chatcmpl-mock',
      object: 'chat.completion',
      created,
      model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: 'Hello from the mock', refusal: null },
          finish_reason: 'stop',
          logprobs: null,
        },
      ],
      usage: { prompt_tokens: 5, completion_tokens: 4, total_tokens: 9 },
    }),
  );
}

/** Anthropic message (JSON, or the SSE event sequence message_start … message_stop). */
function writeAnthropicMessage(res: ServerResponse, body: Buffer): void {
  const req = parseJsonBody(body);
  const model = typeof req.model === 'string' ? req.model : 'claude-test';
  const message = {
    id: 'msg_mock',
    type: 'message',
    role: 'assistant',
    model,
    content: [] as { type: string; text: string }[],
    stop_reason: null as string | null,
    stop_sequence: null,
    usage: { input_tokens: 5, output_tokens: 0 },
  };
  if (req.stream === true) {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    const ev = (type: string, data: unknown): void => {
      res.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    ev('message_start', { type: 'message_start', message });
    ev('content_block_start', {
      type: 'content_block_start',
      index: 0,
      content_block: { type: 'text', text: '' },
    });
    for (const w of ['Hello', ' from', ' the', ' mock']) {
      ev('content_block_delta', {
        type: 'content_block_delta',
        index: 0,
        delta: { type: 'text_delta', text: w },
      });
    }
    ev('content_block_stop', { type: 'content_block_stop', index: 0 });
    ev('message_delta', {
      type: 'message_delta',
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: { output_tokens: 4 },
    });
    ev('message_stop', { type: 'message_stop' });
    res.end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(
    JSON.stringify({
      ...message,
      content: [{ type: 'text', text: 'Hello from the mock' }],
      stop_reason: 'end_turn',
      usage: { input_tokens: 5, output_tokens: 4 },
    }),
  );
}

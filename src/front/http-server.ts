/**
 * The loopback HTTP/WebSocket listener (SPEC §8), on the SAME uWS app and request pool as the unix
 * socket front. Routes:
 *   GET  /aivault/health            liveness + which vault (no auth, no secrets)
 *   POST /aivault/proxy             JSON envelope → upstream status, filtered headers, streamed body
 *   ANY  /v/{credential}/…          passthrough for unchanged SDKs (base-URL swap)
 *   GET  /aivault/ws                WebSocket relay (first frame {capability, path})
 *   GET  /metrics                   Prometheus metrics (operator token; src/front/metrics.ts)
 *   …    /aivault/{credentials,capabilities,secrets,tokens}   operator API (http-admin.ts)
 *   …    /aivault/ui/…                   operator dashboard (dashboard/routes.ts; session cookie)
 * Proxy routes need a proxy token (`avp_…`); operator routes an operator token (`avo_…`). Peers that are
 * not on loopback — and WebSocket upgrades from a web page whose Origin is not on loopback — are refused
 * unless the operator opted in (`--http-allow-remote`). A relay or an HTTP stream lives only as long as its
 * token: expiry or revocation closes it (1008 for a relay; a 401 or a cut connection for a stream). This
 * thread checks tokens (hashes only), routes, and moves bytes: request bodies are transferred to the
 * request worker, which parses the proxy's JSON, picks the passthrough capability and makes every policy
 * decision; answers come back through the shared relay (relay.ts). No secret value ever reaches this
 * thread.
 */
import { STATUS_CODES } from 'node:http';
import { createHash } from 'node:crypto';
import type { Config } from '../core/config/env.js';
import { AivaultError, ERRORS, fromWire, toWire, type ErrorCode } from '../core/errors.js';
import type { BrokerSnapshot, HeaderList, RequestContext } from '../core/broker/types.js';
import { registry } from '../core/registry/index.js';
import { createCatalogCache } from '../stores/catalog/cache.js';
import { AuditLog, type AuditInput } from '../stores/audit/audit-log.js';
import { vaultPaths } from '../stores/vault/index.js';
import { TokenVerifier, type ProxyTokenRecord } from '../stores/tokens/tokens.js';
import type { DaemonPool } from '../pool/pool.js';
import {
  closeListenSocket,
  localPort,
  sendMessage,
  type HttpRequest,
  type HttpResponse,
  type ListenSocket,
  type TemplatedApp,
  type WebSocket,
} from './uws.js';
import { extractToken, isLoopbackOrigin, isLoopbackPeer, splitPassthroughPath } from './http-passthrough.js';
import type { CallRequest } from '../core/threads/call-port.js';
import { Credits, startRelayedCall, type CallRelay, type RelaySink } from './relay.js';
import { handleAdmin, type AdminContext } from './http-admin.js';
import { checkFraming } from './http-strict.js';
import { tapWs } from './call-events-tap.js';
import type { ApprovalStore } from './approvals.js';
import type { DashboardAuth } from './dashboard/session.js';
import { mountDashboard } from './dashboard/routes.js';
import {
  sendableCloseCode,
  WS_MAX_UNACKED_BYTES,
  type WsConnect,
  type WsMainToWorker,
} from '../core/threads/ws-protocol.js';
import type { DaemonMetrics } from './metrics.js';
import { formatServerTiming, type Timings } from '../core/threads/server-timing.js';

/** Largest request body the listener accepts (the same bound as a unix-socket frame). */
export const MAX_HTTP_BODY_BYTES = 64 * 1024 * 1024;
const HIGH_WATER = 1024 * 1024;
/**
 * How often open /aivault/ws relays and open HTTP streams (/aivault/proxy, /v/…, SSE included) re-check
 * that their proxy token is still valid (not expired/revoked).
 */
export const WS_TOKEN_RECHECK_MS = 1000;

export interface HttpServerOptions {
  readonly host: string;
  readonly port: number;
  /** Accept non-loopback peers (operator opt-in). */
  readonly allowRemote: boolean;
  /** Token re-check interval for open relays and streams (default WS_TOKEN_RECHECK_MS). Tests only. */
  readonly tokenRecheckMs?: number;
  /** Dashboard logins and sessions (dashboard/session.ts): serves /aivault/ui when given. */
  readonly dashboard?: DashboardAuth;
  /** Pending approvals shown (and decided) on the dashboard. */
  readonly approvals?: ApprovalStore;
  /** Serves GET /metrics (operator token) and counts the listener's own refusals. */
  readonly metrics?: DaemonMetrics;
}

/** An HTTP call in flight, authorised by its proxy token for as long as it runs (like a relay). */
interface OpenStream {
  readonly token: ProxyTokenRecord;
  readonly route: string;
  readonly peer: string;
  /** Abort the call and end the response (401 before the head, a cut connection after it). */
  revoke(): void;
}

export interface HttpServer {
  readonly host: string;
  readonly port: number;
  stopListening(): void;
  /** Close every /aivault/ws relay (they are long-lived: shutdown must not wait for them). */
  closeWebSockets(): void;
  closeConnections(): void;
}

interface ReqState {
  aborted: boolean;
  finished: boolean;
  onAbort?: () => void;
}

interface WsData {
  peer: string;
  /** The proxy token the upgrade was verified with; re-checked for as long as the socket is open. */
  token: ProxyTokenRecord | undefined;
  tokenError: AivaultError | undefined;
  relay?: { post(msg: WsMainToWorker, transfer?: ArrayBuffer[]): void };
  /** Credits for the upstream's messages to this client (relay.ts). */
  credits?: Credits;
  connected: boolean;
  open: boolean;
  unacked: number;
  /** Call events of this relay (call-events-tap.ts), while someone watches. */
  events?: { end(status: number, error?: string): void };
}

function statusLine(status: number): string {
  return `${status} ${STATUS_CODES[status] ?? 'Status'}`;
}

const text = (ab: ArrayBuffer): string => Buffer.from(ab).toString('utf8');

/** Vault identity shown by /aivault/health so `aivault run` can tell its daemon from another one. */
export function vaultTag(vaultDir: string): string {
  return createHash('sha256').update(vaultDir).digest('hex').slice(0, 16);
}

function writeJson(res: HttpResponse, st: ReqState, status: number, value: unknown): void {
  if (st.aborted || st.finished) return;
  st.finished = true;
  res.cork(() => {
    res
      .writeStatus(statusLine(status))
      .writeHeader('content-type', 'application/json')
      .writeHeader('cache-control', 'no-store')
      .end(JSON.stringify(value));
  });
}

/** A /metrics answer (Prometheus text format). */
function writeMetrics(res: HttpResponse, st: ReqState, contentType: string, body: string): void {
  if (st.aborted || st.finished) return;
  st.finished = true;
  res.cork(() => {
    res
      .writeStatus('200 OK')
      .writeHeader('content-type', contentType)
      .writeHeader('cache-control', 'no-store')
      .end(body);
  });
}

function writeError(res: HttpResponse, st: ReqState, err: unknown): ErrorCode {
  const wire = toWire(err);
  writeJson(res, st, ERRORS[wire.error].http, wire);
  return wire.error;
}

/**
 * Read the whole request body (bounded) into one owned buffer, which a call then transfers to its worker
 * (never a pooled Buffer: transferring would detach the pool). Must be called synchronously inside the
 * route handler.
 */
function readBody(
  res: HttpResponse,
  st: ReqState,
  contentLength: string,
  cb: (body: Uint8Array<ArrayBuffer>) => void,
): void {
  if (contentLength && Number(contentLength) > MAX_HTTP_BODY_BYTES) {
    writeError(
      res,
      st,
      new AivaultError('body_too_large', `request body exceeds ${MAX_HTTP_BODY_BYTES} bytes`),
    );
    return;
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  let failed = false;
  res.onData((ab, isLast) => {
    if (failed || st.finished || st.aborted) return;
    total += ab.byteLength;
    if (total > MAX_HTTP_BODY_BYTES) {
      failed = true;
      writeError(
        res,
        st,
        new AivaultError('body_too_large', `request body exceeds ${MAX_HTTP_BODY_BYTES} bytes`),
      );
      return;
    }
    // uWS neuters the chunk after this callback: copy it (the copy of a one-piece body is the body).
    const piece = new Uint8Array(ab).slice();
    if (!isLast) {
      chunks.push(piece);
      return;
    }
    if (st.aborted) return;
    if (chunks.length === 0) return cb(piece);
    const body = new Uint8Array(total);
    let at = 0;
    for (const c of [...chunks, piece]) {
      body.set(c, at);
      at += c.byteLength;
    }
    cb(body);
  });
}

function tokenContext(token: ProxyTokenRecord, peer: string): RequestContext {
  return {
    ...(peer ? { clientIp: peer } : {}),
    ...(token.workspaceId !== undefined ? { workspaceId: token.workspaceId } : {}),
    ...(token.groupId !== undefined ? { groupId: token.groupId } : {}),
    token: {
      id: token.id,
      capabilities: token.capabilities,
      ...(token.credential !== undefined ? { credential: token.credential } : {}),
    },
  };
}

/** Request headers a passthrough call forwards: the token headers are consumed, transport headers dropped. */
export const PASSTHROUGH_DROP: ReadonlySet<string> = new Set([
  'authorization',
  'x-api-key',
  'x-goog-api-key',
  'host',
  'connection',
  'keep-alive',
  'content-length',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'proxy-connection',
  'cookie',
]);

export async function startHttpServer(
  app: TemplatedApp,
  pool: DaemonPool,
  config: Config,
  opts: HttpServerOptions,
): Promise<HttpServer> {
  const paths = vaultPaths(config);
  const verifier = new TokenVerifier(config.vaultDir, Date.now, pool.generation);
  const auditLog = new AuditLog(config, paths, { sealKey: () => pool.auditKey() });
  const audit = (event: AuditInput): void => {
    auditLog.append(event).catch((err: unknown) => {
      process.stderr.write(`aivaultd: ${(err as Error).message}\n`);
    });
  };
  const responses = new Set<HttpResponse>();
  const sockets = new Set<WebSocket<WsData>>();
  const streams = new Set<OpenStream>();
  const recheckMs = opts.tokenRecheckMs ?? WS_TOKEN_RECHECK_MS;
  const tag = vaultTag(config.vaultDir);

  /**
   * Every route starts here: abort tracking, framing rules (http-strict.ts), the peer check. Returns
   * undefined when refused. Must run synchronously in the route handler (it reads `req`).
   */
  const begin = (res: HttpResponse, req: HttpRequest): { st: ReqState; peer: string } | undefined => {
    const st: ReqState = { aborted: false, finished: false };
    responses.add(res);
    res.onAborted(() => {
      st.aborted = true;
      responses.delete(res);
      st.onAbort?.();
    });
    const lines: [string, string][] = [];
    req.forEach((name, value) => lines.push([name, value]));
    const framing = checkFraming(lines);
    if (framing) {
      // Not end(): uWS would go on to dispatch a request smuggled after this one in the same read. With
      // this response still open, uWS drops the connection if anything follows; otherwise the status and
      // message go out and the connection is closed on the next turn.
      st.finished = true;
      res
        .writeStatus(statusLine(framing.status))
        .writeHeader('content-type', 'application/json')
        .writeHeader('connection', 'close')
        .write(JSON.stringify({ error: 'invalid_request', message: framing.message }));
      setImmediate(() => {
        if (!st.aborted) res.close();
      });
      return undefined;
    }
    const peer = text(res.getRemoteAddressAsText());
    if (!opts.allowRemote && !isLoopbackPeer(peer)) {
      writeError(
        res,
        st,
        new AivaultError(
          'policy_violation',
          'non-loopback clients are refused (aivaultd --http-allow-remote)',
        ),
      );
      audit({
        kind: 'http.refused',
        clientIp: peer,
        errorCode: 'policy_violation',
        note: 'non-loopback peer',
      });
      return undefined;
    }
    return { st, peer };
  };

  /**
   * Run one invocation and stream its answer into `res` with credit-based backpressure (relay.ts). The
   * call stays registered in `streams` until it ends, so the token re-check can end it when the token dies.
   */
  const relayCall = (
    res: HttpResponse,
    st: ReqState,
    call: CallRequest,
    token: ProxyTokenRecord,
    peer: string,
    route: string,
  ): void => {
    const tracked: { entry?: OpenStream } = {};
    const live = (): boolean => !st.aborted && !st.finished;
    // uWS reports backpressure as write()'s result; the relay asks right after each chunk.
    let writable = true;
    let waiting = false;
    const transport = route === '/v/' ? 'passthrough' : 'proxy';
    const sink: RelaySink = {
      head: (status, headers, timing) => live() && res.cork(() => writeHead(res, status, headers, timing)),
      chunk: (data) => live() && res.cork(() => (writable = res.write(data))),
      end: () => live() && res.cork(() => res.end()),
      full: (status, headers, body, _scrubbed, timing) =>
        live() &&
        res.cork(() => {
          writeHead(res, status, headers, timing);
          res.end(body);
        }),
      error: (error, headSent) => {
        if (!live()) return;
        if (!headSent) writeError(res, st, fromWire(error));
        else res.close(); // mid-stream failure: the client sees a truncated body
      },
      finished: () => {
        st.finished = true;
        responses.delete(res);
        if (tracked.entry) untrack(tracked.entry);
      },
    };
    let relay: CallRelay;
    try {
      relay = startRelayedCall(
        pool,
        { ...call, context: tokenContext(token, peer), stream: true, transport },
        sink,
        () => writable,
        () => {
          if (waiting) return;
          waiting = true;
          res.onWritable(() => {
            waiting = false;
            writable = true;
            relay.drained();
            return true;
          });
        },
      );
    } catch (err) {
      const code = writeError(res, st, err);
      opts.metrics?.writer.refusal(transport, code);
      return;
    }
    const entry: OpenStream = {
      token,
      route,
      peer,
      revoke: () => {
        if (!live()) return;
        if (!relay.answered) {
          writeError(res, st, new AivaultError('token_invalid', 'proxy token expired or was revoked'));
        } else res.close(); // mid-stream: the client sees a cut connection, never a clean end
        relay.stop();
      },
    };
    tracked.entry = entry;
    if (!st.finished) track(entry);
    st.onAbort = () => relay.stop();
  };

  const writeHead = (res: HttpResponse, status: number, headers: HeaderList, timing?: Timings): void => {
    res.writeStatus(statusLine(status));
    for (const [n, v] of headers) {
      // The upstream's own Server-Timing is replaced by ours (where the time went in aivault).
      if (n === 'date' || n === 'content-length' || n === 'transfer-encoding' || n === 'server-timing')
        continue;
      res.writeHeader(n, v);
    }
    if (timing) res.writeHeader('server-timing', formatServerTiming(timing));
  };

  const verifyProxy = async (
    res: HttpResponse,
    st: ReqState,
    peer: string,
    token: string | undefined,
    route: string,
  ) => {
    try {
      return await verifier.verifyProxy(token);
    } catch (err) {
      const code = writeError(res, st, err);
      audit({ kind: 'http.denied', path: route, clientIp: peer || undefined, errorCode: code } as AuditInput);
      opts.metrics?.writer.refusal(route === '/v/' ? 'passthrough' : 'proxy', code);
      return undefined;
    }
  };

  const metrics = opts.metrics;
  if (metrics) {
    // Operator token required (a proxy token gets operator_auth_required). Denials are audited; a
    // successful scrape is not (a scraper every 15 s would fill the audit log).
    app.get('/metrics', (res, req) => {
      const b = begin(res, req);
      if (!b) return;
      const { st, peer } = b;
      const token = /^Bearer\s+(\S+)$/i.exec(req.getHeader('authorization').trim())?.[1];
      verifier
        .verifyOperator(token)
        .then(() => metrics.scrape())
        .then(
          (body) => writeMetrics(res, st, metrics.contentType, body),
          (err: unknown) => {
            const code = writeError(res, st, err);
            audit({
              kind: 'http.denied',
              path: '/metrics',
              errorCode: code,
              ...(peer ? { clientIp: peer } : {}),
            });
          },
        );
    });
  }

  app.get('/aivault/health', (res, req) => {
    const b = begin(res, req);
    if (!b) return;
    writeJson(res, b.st, 200, { ok: true, vault: tag, pid: process.pid });
  });

  app.post('/aivault/proxy', (res, req) => {
    const b = begin(res, req);
    if (!b) return;
    const { st, peer } = b;
    const token = extractToken({ authorization: req.getHeader('authorization') }, false);
    // Verify while the body streams in: a bad token is answered at once and the rest of the body dropped.
    const verified = verifyProxy(res, st, peer, token, '/aivault/proxy');
    readBody(res, st, req.getHeader('content-length'), (body) => {
      void verified.then((rec) => {
        if (!rec || st.aborted) return;
        // The worker parses the envelope: this thread only moves its bytes.
        relayCall(res, st, { envelopeJson: body.buffer }, rec, peer, '/aivault/proxy');
      });
    });
  });

  app.any('/v/*', (res, req) => {
    const b = begin(res, req);
    if (!b) return;
    const { st, peer } = b;
    const method = req.getCaseSensitiveMethod().toUpperCase();
    const url = req.getUrl();
    const query = req.getQuery() ?? '';
    const token = extractToken(
      {
        authorization: req.getHeader('authorization'),
        'x-api-key': req.getHeader('x-api-key'),
        'x-goog-api-key': req.getHeader('x-goog-api-key'),
      },
      true,
    );
    const headers: [string, string][] = [];
    req.forEach((name, value) => {
      if (!PASSTHROUGH_DROP.has(name)) headers.push([name, value]);
    });
    const split = splitPassthroughPath(url);
    const hasBody = method !== 'GET' && method !== 'HEAD';
    const verified = verifyProxy(res, st, peer, token, '/v/');
    const proceed = (body: Uint8Array<ArrayBuffer> | undefined): void => {
      void verified.then((rec) => {
        if (!rec || st.aborted) return;
        if (!split) {
          writeError(
            res,
            st,
            new AivaultError('invalid_request', 'passthrough paths look like /v/{credential}/…'),
          );
          return;
        }
        // The request worker matches the capability (and audits a miss): no catalog work here.
        const passthrough = { credential: split.credential, method, path: split.rest, query, headers };
        const call: CallRequest =
          body && body.byteLength > 0 ? { passthrough, body: body.buffer } : { passthrough };
        relayCall(res, st, call, rec, peer, '/v/');
      });
    };
    if (hasBody) readBody(res, st, req.getHeader('content-length'), proceed);
    else proceed(undefined);
  });

  // The operator API reads the catalog; its cache is made on the first operator call, so a daemon that
  // only proxies does no catalog work on this thread (passthrough matching runs in the request worker).
  let catalog: (() => Promise<BrokerSnapshot>) | undefined;
  const snapshot = (): Promise<BrokerSnapshot> =>
    (catalog ??= createCatalogCache(paths, registry, pool.generation))();
  const adminCtx: AdminContext = {
    config,
    paths,
    verifier,
    snapshot,
    audit,
    afterWrite: () => pool.generation.bump(),
    approvals: pool.approvals,
  };
  const ui = opts.dashboard
    ? mountDashboard(app, {
        auth: opts.dashboard,
        allowRemote: opts.allowRemote,
        vaultDir: config.vaultDir,
        begin,
        snapshot,
        auditLog,
        auditKey: () => pool.auditKey(),
        audit,
        rateLimit: pool.rateLimit,
        approvals: opts.approvals ?? pool.approvals,
        afterWrite: () => pool.generation.bump(),
      })
    : undefined;
  app.any('/aivault/*', (res, req) => {
    const b = begin(res, req);
    if (!b) return;
    const { st, peer } = b;
    const method = req.getCaseSensitiveMethod().toUpperCase();
    const url = req.getUrl();
    const auth = req.getHeader('authorization');
    const token = /^Bearer\s+(\S+)$/i.exec(auth.trim())?.[1];
    const run = (body: Uint8Array<ArrayBuffer> | undefined): void => {
      void handleAdmin(adminCtx, { method, url, token, body: body && Buffer.from(body.buffer), peer }).then(
        (r) => writeJson(res, st, r.status, r.body),
        (err: unknown) => writeError(res, st, err),
      );
    };
    if (method === 'POST' || method === 'PATCH' || method === 'PUT') {
      readBody(res, st, req.getHeader('content-length'), run);
    } else run(undefined);
  });

  app.any('/*', (res, req) => {
    const b = begin(res, req);
    if (!b) return;
    writeError(res, b.st, new AivaultError('not_found', 'no such route'));
  });

  app.ws<WsData>('/aivault/ws', {
    maxPayloadLength: 64 * 1024 * 1024,
    maxBackpressure: 1024 * 1024 * 1024,
    closeOnBackpressureLimit: 0,
    idleTimeout: 0,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      const peer = text(res.getRemoteAddressAsText());
      const refuse = (message: string, note: string): void => {
        res
          .writeStatus('403 Forbidden')
          .writeHeader('content-type', 'application/json')
          .end(JSON.stringify({ error: 'policy_violation', message }));
        audit({ kind: 'http.refused', clientIp: peer, errorCode: 'policy_violation', note });
      };
      if (!opts.allowRemote && !isLoopbackPeer(peer)) {
        refuse('non-loopback clients are refused', 'non-loopback peer');
        return;
      }
      // Browsers send Origin on every WebSocket upgrade and WebSockets are not covered by CORS: a page on
      // another site must not drive the relay (cross-site WebSocket hijacking). Non-browser clients send none.
      const origin = req.getHeader('origin');
      if (!opts.allowRemote && origin !== '' && !isLoopbackOrigin(origin)) {
        refuse(
          'cross-origin WebSocket upgrades are refused: the Origin is not on loopback',
          'non-loopback origin',
        );
        return;
      }
      const token = extractToken({ authorization: req.getHeader('authorization') }, false);
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      let aborted = false;
      res.onAborted(() => (aborted = true));
      void verifier.verifyProxy(token).then(
        (rec) => {
          if (aborted) return;
          res.cork(() =>
            res.upgrade<WsData>(
              {
                peer,
                token: rec,
                tokenError: undefined,
                connected: false,
                open: true,
                unacked: 0,
              },
              key,
              protocol,
              extensions,
              context,
            ),
          );
        },
        (err: unknown) => {
          if (aborted) return;
          const wire = toWire(err);
          audit({
            kind: 'http.denied',
            path: '/aivault/ws',
            errorCode: wire.error,
            ...(peer ? { clientIp: peer } : {}),
          });
          res.cork(() =>
            res
              .writeStatus(statusLine(ERRORS[wire.error].http))
              .writeHeader('content-type', 'application/json')
              .end(JSON.stringify(wire)),
          );
        },
      );
    },
    open: (ws) => {
      sockets.add(ws);
      startRecheck();
    },
    message: (ws, message, isBinary) => {
      const d = ws.getUserData();
      const data = new Uint8Array(message).slice();
      if (!d.connected) {
        d.connected = true;
        let connect: WsConnect;
        try {
          if (!d.token || d.token.expiresAtMs <= Date.now()) {
            throw new AivaultError('token_invalid', 'proxy token expired');
          }
          connect = parseConnectFrame(Buffer.from(data).toString('utf8'));
        } catch (err) {
          const wire = toWire(err);
          audit({
            kind: 'ws',
            errorCode: wire.error,
            note: 'connect frame refused',
            ...(d.peer ? { clientIp: d.peer } : {}),
          });
          ws.cork(() => {
            ws.send(JSON.stringify(wire), false);
            ws.end(1008, wire.error);
          });
          return;
        }
        startRelay(ws, connect);
        return;
      }
      if (!d.relay) return;
      d.unacked += data.byteLength;
      if (d.unacked > WS_MAX_UNACKED_BYTES) {
        ws.end(1013, 'upstream is not keeping up');
        return;
      }
      d.relay.post({ t: 'ws-send', data: data.buffer, binary: isBinary }, [data.buffer]);
    },
    drain: (ws) => {
      ws.getUserData().credits?.drained();
    },
    close: (ws, code, message) => {
      sockets.delete(ws);
      if (sockets.size === 0 && streams.size === 0) stopRecheck();
      const d = ws.getUserData();
      d.open = false;
      d.events?.end(101);
      if (d.relay) {
        d.relay.post({ t: 'ws-close', code, reason: Buffer.from(message).toString('utf8') });
        // If the upstream does not finish the close handshake, the worker gives up on its own timer.
      }
    },
  });

  let recheckTimer: ReturnType<typeof setInterval> | undefined;
  let rechecking = false;
  const startRecheck = (): void => {
    recheckTimer ??= setInterval(() => void recheckTokens(), recheckMs).unref();
  };
  const stopRecheck = (): void => {
    if (recheckTimer) clearInterval(recheckTimer);
    recheckTimer = undefined;
  };
  function track(s: OpenStream): void {
    streams.add(s);
    startRecheck();
  }
  function untrack(s: OpenStream): void {
    streams.delete(s);
    if (sockets.size === 0 && streams.size === 0) stopRecheck();
  }
  /**
   * A relay or an HTTP stream is authorised by its token for as long as it is open, not just when it
   * starts: end every one whose token expired or was revoked (tokens.json is re-read only when it
   * changed). A token file that cannot be read ends them too (fail closed), as it refuses new calls.
   */
  const recheckTokens = async (): Promise<void> => {
    if (rechecking || (sockets.size === 0 && streams.size === 0)) return;
    rechecking = true;
    try {
      const active = await verifier.activeProxyTokenIds().catch(() => new Set<string>());
      const now = Date.now();
      for (const s of [...streams]) {
        if (active.has(s.token.id) && s.token.expiresAtMs > now) continue;
        audit({
          kind: 'http.denied',
          path: s.route,
          errorCode: 'token_invalid',
          note: 'stream closed: token expired or revoked',
          ...(s.peer ? { clientIp: s.peer } : {}),
        });
        s.revoke();
      }
      for (const ws of [...sockets]) {
        const d = ws.getUserData();
        if (!d.open) continue;
        if (d.token && active.has(d.token.id) && d.token.expiresAtMs > now) continue;
        d.open = false;
        audit({
          kind: 'http.denied',
          path: '/aivault/ws',
          errorCode: 'token_invalid',
          note: 'relay closed: token expired or revoked',
          ...(d.peer ? { clientIp: d.peer } : {}),
        });
        ws.end(1008, 'token_invalid');
      }
    } finally {
      rechecking = false;
    }
  };

  const startRelay = (ws: WebSocket<WsData>, connect: WsConnect): void => {
    const d = ws.getUserData();
    const rec = d.token as ProxyTokenRecord;
    const events = tapWs(connect);
    if (events) d.events = events;
    try {
      const relay = pool.startWs({ connect, context: tokenContext(rec, d.peer) }, (msg) => {
        if (!d.open) return;
        switch (msg.t) {
          case 'ws-open':
            return;
          case 'ws-msg': {
            sendMessage(ws, new Uint8Array(msg.data), msg.binary);
            d.credits?.written();
            return;
          }
          case 'ws-ack':
            d.unacked = Math.max(0, d.unacked - msg.bytes);
            return;
          case 'ws-close':
            events?.end(101);
            d.open = false;
            ws.end(sendableCloseCode(msg.code), msg.reason);
            return;
          case 'error':
            events?.end(0, msg.error.error);
            d.open = false;
            ws.cork(() => {
              ws.send(JSON.stringify(toWire(fromWire(msg.error))), false);
              const policy = msg.error.error === 'policy_violation' || msg.error.error === 'approval_denied';
              ws.end(policy ? 1008 : 1011, msg.error.error);
            });
            return;
        }
      });
      d.relay = relay;
      d.credits = new Credits(relay, () => ws.getBufferedAmount() < HIGH_WATER);
    } catch (err) {
      const wire = toWire(err);
      events?.end(0, wire.error);
      ws.cork(() => {
        ws.send(JSON.stringify(wire), false);
        ws.end(1011, wire.error);
      });
    }
  };

  const listenSocket = await new Promise<ListenSocket | false>((resolve) => {
    app.listen(opts.host, opts.port, (s) => resolve(s));
  });
  if (!listenSocket) {
    throw new AivaultError('daemon_unavailable', `cannot listen on ${opts.host}:${opts.port} (in use?)`);
  }
  let ls: ListenSocket | undefined = listenSocket;
  const port = localPort(listenSocket);
  return {
    host: opts.host,
    port,
    stopListening() {
      if (!ls) return;
      closeListenSocket(ls);
      ls = undefined;
    },
    closeWebSockets() {
      stopRecheck();
      ui?.closeViewers();
      for (const ws of [...sockets]) ws.end(1001, 'aivaultd shutting down');
    },
    closeConnections() {
      stopRecheck();
      ui?.closeViewers();
      streams.clear();
      for (const ws of [...sockets]) ws.end(1001, 'aivaultd shutting down');
      for (const res of [...responses]) {
        try {
          res.close();
        } catch {
          // already gone
        }
      }
    },
  };
}

const CONNECT_FIELDS = new Set(['capability', 'path', 'credential', 'headers']);

/** The first client frame of /aivault/ws: `{capability, path, credential?, headers?}`; `targetUrl` is refused. */
export function parseConnectFrame(textFrame: string): WsConnect {
  let v: unknown;
  try {
    v = JSON.parse(textFrame);
  } catch {
    throw new AivaultError('invalid_request', 'the first frame must be a JSON object {capability, path}');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new AivaultError('invalid_request', 'the first frame must be a JSON object {capability, path}');
  }
  const o = v as Record<string, unknown>;
  if ('targetUrl' in o || 'url' in o) {
    throw new AivaultError(
      'policy_violation',
      'targetUrl is not allowed: the upstream comes from capability policy',
    );
  }
  for (const k of Object.keys(o)) {
    if (!CONNECT_FIELDS.has(k)) throw new AivaultError('invalid_request', `unknown connect field ${k}`);
  }
  if (typeof o.capability !== 'string' || o.capability === '') {
    throw new AivaultError('invalid_request', 'connect frame needs a capability');
  }
  if (typeof o.path !== 'string' || !o.path.startsWith('/')) {
    throw new AivaultError('invalid_request', 'connect frame needs a path starting with /');
  }
  if (o.credential !== undefined && typeof o.credential !== 'string') {
    throw new AivaultError('invalid_request', 'credential must be a string');
  }
  let headers: [string, string][] | undefined;
  if (o.headers !== undefined) {
    if (
      !Array.isArray(o.headers) ||
      !o.headers.every((h) => Array.isArray(h) && h.length === 2 && h.every((x) => typeof x === 'string'))
    ) {
      throw new AivaultError('invalid_request', 'headers must be a list of [name, value] pairs');
    }
    headers = o.headers as [string, string][];
  }
  return {
    capability: o.capability,
    path: o.path,
    ...(typeof o.credential === 'string' ? { credential: o.credential } : {}),
    ...(headers ? { headers } : {}),
  };
}

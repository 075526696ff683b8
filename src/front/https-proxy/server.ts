/**
 * The HTTPS proxy listener (`aivaultd --https-proxy 127.0.0.1:PORT`), daemon main thread: an HTTP
 * CONNECT proxy for unchanged tools (curl, git, Python requests, Node with `aivault run`).
 *
 * It is a Node `net`/`http` server, not a route on the uWS app: the uWS build cannot hand a raw socket
 * over for a tunnel (no CONNECT support, no socket detach), and TLS termination needs the socket.
 *
 * - Every CONNECT needs a proxy token as proxy credentials (`Proxy-Authorization: Basic`, password =
 *   `avp_…`): missing/invalid → 407.
 * - A host served by a capability the token grants: `200`, then TLS terminated with a leaf cert from the
 *   vault's CA (ca.ts); each inner request is dispatched through the request workers exactly like `/v/`
 *   passthrough (pool.startCall with the passthrough form: the worker matches the capability), so
 *   policy, auth injection, scrubbing and audit are the same code. A WebSocket upgrade inside the tunnel
 *   is matched here (match.ts) and relayed by the worker's WebSocket half (http-ws-upstream.ts).
 * - A tunnel lives only as long as its token: revoked/expired tokens and a vault lock close it.
 * - A host on the token's `tunnelHosts`: a blind tunnel (no termination, no injection).
 * - Any other host: 403 naming the host and `aivault run --tunnel-host HOST`. Never a silent tunnel.
 * No secret value ever reaches this thread.
 */
import {
  createServer,
  STATUS_CODES,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket as ClientWs } from 'ws';
import type { Config } from '../../core/config/env.js';
import { AivaultError, ERRORS, fromWire, toWire } from '../../core/errors.js';
import type { Credential, Envelope, RequestContext } from '../../core/broker/types.js';
import type { AuthSpec } from '../../core/registry/types.js';
import { registry } from '../../core/registry/index.js';
import { createCatalogCache } from '../../stores/catalog/cache.js';
import { AuditLog, type AuditInput } from '../../stores/audit/audit-log.js';
import { vaultPaths } from '../../stores/vault/index.js';
import { TokenVerifier, type ProxyTokenRecord } from '../../stores/tokens/tokens.js';
import type { DaemonPool } from '../../pool/daemon-pool.js';
import { startRelayedCall, type CallRelay, type RelaySink } from '../relay.js';
import type { CallRequest } from '../../core/threads/call-port.js';
import { isLoopbackPeer } from '../http-passthrough.js';
import { PASSTHROUGH_DROP } from '../http/call-routes.js';
import { WS_TOKEN_RECHECK_MS } from '../http/proxy-tokens.js';
import { sendableCloseCode, WS_MAX_UNACKED_BYTES, type WsConnect } from '../../core/threads/ws-protocol.js';
import {
  parseConnectTarget,
  placeholderProviders,
  proxyAuthRequired,
  proxyTokenFrom,
  rawReply,
  type ConnectTarget,
} from './connect.js';
import { credentialsForHost, matchInner } from './match.js';
import { loadOrCreateCa, type LeafIssuer } from './ca.js';
import { caCertPath } from './paths.js';

/** Largest inner request body (the same bound as the HTTP listener and a unix-socket frame). */
const MAX_BODY_BYTES = 64 * 1024 * 1024;

export interface HttpsProxyOptions {
  readonly host: string;
  readonly port: number;
  /** Accept non-loopback peers (operator opt-in, like the HTTP listener's). */
  readonly allowRemote: boolean;
  /** The vault tag `/aivault/health` reports (so `aivault run` knows whose proxy it found). */
  readonly vaultTag: string;
  /** How often open tunnels re-check their proxy token (default WS_TOKEN_RECHECK_MS). Tests only. */
  readonly tokenRecheckMs?: number;
}

export interface HttpsProxyServer {
  readonly host: string;
  readonly port: number;
  /** The vault CA's public cert (exists once the CA was created; absent while the vault is locked). */
  readonly caCertPath: string;
  stopListening(): void;
  closeConnections(): void;
  /** CONNECT tunnels open now (terminated or blind): what the token re-check watches. */
  openTunnels(): number;
}

/** What an inner TLS connection was opened for. */
interface Tunnel {
  readonly token: ProxyTokenRecord;
  readonly target: ConnectTarget;
  readonly credentials: readonly Credential[];
  readonly peer: string;
  /** The request context of every call in this tunnel (built once at the CONNECT; cloned per call). */
  readonly context: RequestContext;
}

/** An open CONNECT (terminated or blind) and what must be closed when its token stops being valid. */
interface OpenTunnel {
  readonly token: ProxyTokenRecord;
  readonly host: string;
  readonly peer: string;
  /** The client socket (raw TCP) and, when terminated, the TLS socket on top of it. */
  readonly sockets: Duplex[];
  /** WebSockets relayed inside this tunnel: closed with 1008 before the sockets go. */
  readonly webSockets: Set<ClientWs>;
}

/** An inner request refused before dispatch: status, our JSON error, extra response headers. */
interface Refusal {
  readonly status: number;
  readonly wire: { error: string; message: string };
  readonly headers?: Readonly<Record<string, string>>;
}

/** An inner request ready for the request worker. */
interface Prepared {
  readonly method: string;
  /** Matched on this thread only when it must be (a WebSocket connect, or several credentials serve the host). */
  readonly capability: string | undefined;
  readonly credential: Credential;
  readonly path: string;
  /** The query without placeholder parameters ('' when none). */
  readonly query: string;
  readonly headers: [string, string][];
}

/** Inner requests after the token was revoked get the proxy's own auth challenge, as a CONNECT would. */
const TOKEN_GONE: Refusal = {
  status: 407,
  wire: { error: 'token_invalid', message: 'proxy token expired or was revoked' },
  headers: { 'proxy-authenticate': 'Basic realm="aivault"' },
};

function contextOf(token: ProxyTokenRecord, peer: string): RequestContext {
  return {
    ...(peer ? { clientIp: peer } : {}),
    ...(token.workspaceId !== undefined ? { workspaceId: token.workspaceId } : {}),
    ...(token.groupId !== undefined ? { groupId: token.groupId } : {}),
    token: {
      id: token.id,
      capabilities: token.capabilities,
      ...(token.credential !== undefined ? { credential: token.credential } : {}),
    },
    via: 'https-proxy',
  };
}

function refusalOf(err: unknown): Refusal {
  const wire = toWire(err);
  return { status: ERRORS[wire.error].http, wire };
}

/** Request headers never forwarded: the passthrough set (hop-by-hop, the caller's credentials) + proxy ones. */
const DROP: ReadonlySet<string> = new Set([...PASSTHROUGH_DROP, 'proxy-authorization', 'api-key']);

/** Header names a credential's auth writes: whatever the caller sent under them is dropped. */
function authHeaderNames(auth: AuthSpec): string[] {
  if ('header' in auth) return [auth.header.header_name.toLowerCase()];
  if ('multi_header' in auth) return auth.multi_header.map((h) => h.header_name.toLowerCase());
  if ('hmac' in auth) return [auth.hmac.header_name.toLowerCase()];
  if ('oauth2' in auth) return [(auth.oauth2.inject?.header_name ?? 'authorization').toLowerCase()];
  return [];
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, err: unknown): string {
  const wire = toWire(err);
  sendJson(res, ERRORS[wire.error].http, wire);
  return wire.error;
}

function sendRefusal(res: ServerResponse, r: Refusal): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const text = JSON.stringify(r.wire);
  res.writeHead(r.status, {
    ...r.headers,
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

export async function startHttpsProxy(
  pool: DaemonPool,
  config: Config,
  opts: HttpsProxyOptions,
): Promise<HttpsProxyServer> {
  const paths = vaultPaths(config);
  // Keyed on the vault generation (bumped by writers and the vault watcher), like the HTTP listener's: no
  // stat of tokens.json or the catalog files per inner request.
  const verifier = new TokenVerifier(config.vaultDir, Date.now, pool.generation);
  const snapshot = createCatalogCache(paths, registry, pool.generation);
  const auditLog = new AuditLog(config, paths, { sealKey: () => pool.auditKey() });
  const audit = (event: AuditInput): void => {
    auditLog.append(event).catch((err: unknown) => {
      process.stderr.write(`aivaultd: ${(err as Error).message}\n`);
    });
  };
  let issuer: Promise<LeafIssuer> | undefined;
  const getIssuer = (): Promise<LeafIssuer> => {
    issuer ??= loadOrCreateCa(
      config.vaultDir,
      opts.vaultTag,
      () => pool.auditKey(),
      (msg) => process.stderr.write(`aivaultd: ${msg}\n`),
    ).catch((err: unknown) => {
      issuer = undefined; // a locked vault: try again on the next CONNECT
      throw err;
    });
    return issuer;
  };
  const tunnels = new WeakMap<Duplex, Tunnel>();
  const sockets = new Set<Duplex>();
  const track = (s: Duplex): void => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  };

  /**
   * Open CONNECTs by token. Like the /aivault/ws relay (http/ws-relay.ts), a tunnel is authorised by its
   * token for as long as it is open: a timer re-checks the tokens of open tunnels and closes every one
   * whose token expired or was revoked (keep-alive connections, in-flight streams and WebSockets with it).
   */
  const open = new Set<OpenTunnel>();
  const recheckMs = opts.tokenRecheckMs ?? WS_TOKEN_RECHECK_MS;
  let recheckTimer: ReturnType<typeof setInterval> | undefined;
  let rechecking = false;
  const closeTunnel = (o: OpenTunnel, note: string): void => {
    if (!open.delete(o)) return;
    if (open.size === 0 && recheckTimer) {
      clearInterval(recheckTimer);
      recheckTimer = undefined;
    }
    audit({
      kind: 'https-proxy.denied',
      host: o.host,
      errorCode: 'token_invalid',
      note,
      ...(o.peer ? { clientIp: o.peer } : {}),
    });
    for (const ws of o.webSockets) ws.close(1008, 'token_invalid');
    // A WebSocket gets its close frame out first; everything else (SSE, keep-alive, blind bytes) is cut.
    const cut = (): void => {
      for (const s of o.sockets) s.destroy();
    };
    if (o.webSockets.size > 0) setTimeout(cut, 200).unref();
    else cut();
  };
  const recheckTokens = async (): Promise<void> => {
    if (rechecking || open.size === 0) return;
    rechecking = true;
    try {
      // A token file that cannot be read closes them too (fail closed), as it refuses new CONNECTs.
      const active = await verifier.activeProxyTokenIds().catch(() => new Set<string>());
      const now = Date.now();
      for (const o of [...open]) {
        if (active.has(o.token.id) && o.token.expiresAtMs > now) continue;
        closeTunnel(o, 'tunnel closed: token expired or revoked');
      }
    } finally {
      rechecking = false;
    }
  };
  const openTunnel = (o: OpenTunnel): void => {
    open.add(o);
    // Whichever of its sockets closes first ends the tunnel (belt and braces: the raw socket's 'close'
    // does follow the TLS socket's today, which the WebSocket test checks via openTunnels()).
    const gone = (): void => {
      open.delete(o);
      if (open.size === 0 && recheckTimer) {
        clearInterval(recheckTimer);
        recheckTimer = undefined;
      }
    };
    for (const sock of o.sockets) sock.once('close', gone);
    recheckTimer ??= setInterval(() => void recheckTokens(), recheckMs).unref();
  };
  const tunnelOf = new WeakMap<Duplex, OpenTunnel>();
  // Locking the vault ends every brokered tunnel at once and drops the CA key held in memory.
  const onLocked = (): void => {
    issuer = undefined;
    for (const o of [...open]) closeTunnel(o, 'tunnel closed: vault locked');
  };
  pool.onLocked.add(onLocked);

  const inner = createServer({ requestTimeout: 0 }, (req, res) => handleInner(req, res));
  inner.on('clientError', (_err, socket) => socket.destroy());
  inner.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
    handleUpgrade(req, socket, head),
  );

  /**
   * Everything an inner request (plain or WebSocket upgrade) goes through before dispatch: the token
   * still valid, origin-form path, placeholder keys only for their own provider's host, a capability
   * matched by host + method + path, the caller's auth headers and placeholders dropped.
   */
  const prepare = async (
    req: IncomingMessage,
    t: Tunnel,
    needCapability: boolean,
  ): Promise<Refusal | Prepared> => {
    const method = (req.method ?? 'GET').toUpperCase();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const query = q === -1 ? '' : url.slice(q + 1);
    const base: AuditInput = {
      kind: 'https-proxy.request',
      host: t.target.policyHost,
      method,
      path,
      ...(t.peer ? { clientIp: t.peer } : {}),
    };
    // The token may have been revoked or expired since the CONNECT (the tunnel is closed shortly too).
    if (t.token.expiresAtMs <= Date.now() || !(await verifier.isActiveProxyToken(t.token.id))) {
      audit({ ...base, errorCode: 'token_invalid', note: 'token expired or revoked' });
      return TOKEN_GONE;
    }
    if (!url.startsWith('/')) {
      return refusalOf(new AivaultError('invalid_request', 'inner requests use origin-form paths'));
    }
    // Placeholder keys: a provider's placeholder goes only to that provider's host.
    const raw = req.rawHeaders;
    /** Per header value: does it carry a placeholder (computed once, used for the refusal and the drop). */
    const carries: boolean[] = [];
    let foreign: string | undefined;
    const own = (p: string): boolean => t.credentials.some((c) => c.provider === p);
    for (let i = 1; i < raw.length; i += 2) {
      const found = placeholderProviders(raw[i] as string);
      carries.push(found.length > 0);
      foreign ??= found.find((p) => !own(p));
    }
    if (query !== '') {
      foreign ??= [...placeholderProviders(query), ...placeholderProviders(safeDecode(query))].find(
        (p) => !own(p),
      );
    }
    if (foreign !== undefined) {
      const r = refusalOf(
        new AivaultError(
          'policy_violation',
          `a placeholder key for ${foreign} was sent to ${t.target.host}; refused (placeholders are only replaced for their own provider's host)`,
        ),
      );
      audit({
        ...base,
        errorCode: r.wire.error,
        provider: foreign,
        note: 'placeholder for another provider',
      });
      return r;
    }
    // With one credential for the host (the usual case) a plain request is matched in the request worker
    // (the /v/ passthrough form), which re-checks the full policy either way: no catalog work here.
    let capability: string | undefined;
    let cred = t.credentials[0] as Credential;
    if (needCapability || t.credentials.length > 1) {
      const m = matchInner({
        snapshot: await snapshot(),
        registry,
        credentials: t.credentials,
        method,
        path,
        tokenCapabilities: t.token.capabilities,
      });
      if (!m.ok) {
        const r = refusalOf(m.error);
        audit({ ...base, errorCode: r.wire.error, note: 'https proxy: no capability matched' });
        return r;
      }
      capability = m.value.capability;
      cred = m.value.credential;
    }
    const authNames = authHeaderNames(cred.auth);
    const headers: [string, string][] = [];
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = (raw[i] as string).toLowerCase();
      // A header carrying our own placeholder is the caller's stand-in key: the worker injects the real one.
      if (carries[i >> 1] === true || DROP.has(name) || authNames.includes(name)) continue;
      headers.push([name, raw[i + 1] as string]);
    }
    const keptQuery =
      query === ''
        ? ''
        : query
            .split('&')
            .filter((kv) => kv !== '' && placeholderProviders(safeDecode(kv)).length === 0)
            .join('&');
    return { method, capability, credential: cred, path, query: keptQuery, headers };
  };

  const handleInner = (req: IncomingMessage, res: ServerResponse): void => {
    const t = tunnels.get(req.socket);
    if (!t) {
      res.destroy();
      return;
    }
    void (async () => {
      const p = await prepare(req, t, false);
      if ('status' in p) {
        sendRefusal(res, p);
        if (p === TOKEN_GONE) res.once('finish', () => req.socket.destroy());
        return;
      }
      const body = await readBody(req);
      if (body === undefined) {
        sendError(
          res,
          new AivaultError('body_too_large', `request bodies are limited to ${MAX_BODY_BYTES} bytes`),
        );
        return;
      }
      // The body is transferred to the worker, not copied or base64-encoded on this thread.
      const hasBody = body.byteLength > 0;
      const call: CallRequest =
        p.capability === undefined
          ? {
              passthrough: {
                credential: p.credential.id,
                method: p.method,
                path: p.path,
                query: p.query,
                headers: p.headers,
              },
              ...(hasBody ? { body: body.buffer } : {}),
            }
          : {
              envelope: {
                capability: p.capability,
                credential: p.credential.id,
                request: {
                  method: p.method,
                  path: p.query ? `${p.path}?${p.query}` : p.path,
                  headers: p.headers,
                  ...(hasBody
                    ? { bodyBase64: Buffer.from(body.buffer, 0, body.byteLength).toString('base64') }
                    : {}),
                },
              } satisfies Envelope,
            };
      dispatch(res, call, t);
    })().catch((err: unknown) => sendError(res, err));
  };

  /**
   * A WebSocket client inside the tunnel (CONNECT, then an HTTP/1.1 Upgrade over the terminated TLS). The
   * upgrade is matched and authorised like any inner GET (prepare), then handed to a request worker's
   * WebSocket half (http-ws-upstream.ts: the same authorize path, auth injection and scrubbing as
   * /aivault/ws). The client's handshake is answered only once the upstream accepted, so a refusal
   * (ours or the upstream's) reaches the client as an HTTP status with our JSON error, not as a close.
   */
  /** The subprotocol the upstream chose, answered to the client as is (none when the upstream chose none). */
  const upstreamProtocol = new WeakMap<IncomingMessage, string>();
  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: MAX_BODY_BYTES,
    handleProtocols: (_offered, req) => upstreamProtocol.get(req) ?? false,
  });
  const handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const t = tunnels.get(socket);
    const o = tunnelOf.get(socket);
    if (!t || !o) {
      socket.destroy();
      return;
    }
    const refuse = (r: Refusal): void => {
      if (!socket.destroyed) socket.end(rawReply(r.status, r.wire, r.headers ?? {}));
    };
    void (async () => {
      if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
        refuse(refusalOf(new AivaultError('invalid_request', 'only WebSocket upgrades are relayed')));
        return;
      }
      const p = await prepare(req, t, true);
      if ('status' in p || p.capability === undefined) {
        refuse('status' in p ? p : refusalOf(new AivaultError('internal', 'no capability matched')));
        return;
      }
      // Subprotocols go to the upstream, minus any carrying a placeholder key (e.g. a browser-style
      // `…-api-key.<key>` entry): the worker injects the real auth as a header instead.
      const protocols = (req.headers['sec-websocket-protocol'] ?? '')
        .split(',')
        .map((v) => v.trim())
        .filter((v) => v !== '' && placeholderProviders(v).length === 0);
      const connect: WsConnect = {
        capability: p.capability,
        credential: p.credential.id,
        path: p.query ? `${p.path}?${p.query}` : p.path,
        headers: p.headers.filter(([n]) => !n.startsWith('sec-websocket-')),
        ...(protocols.length > 0 ? { protocols } : {}),
      };
      let client: ClientWs | undefined;
      let unacked = 0;
      let closed = false;
      const relay = pool.startWs({ connect, context: t.context }, (msg) => {
        switch (msg.t) {
          case 'ws-open':
            if (socket.destroyed) {
              relay.abort();
              return;
            }
            if (msg.protocol !== '') upstreamProtocol.set(req, msg.protocol);
            wss.handleUpgrade(req, socket, head, (ws) => {
              client = ws;
              o.webSockets.add(ws);
              ws.on('message', (data, isBinary) => {
                const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
                unacked += buf.byteLength;
                if (unacked > WS_MAX_UNACKED_BYTES) {
                  ws.close(1013, 'upstream is not keeping up');
                  return;
                }
                const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
                relay.post({ t: 'ws-send', data: ab as ArrayBuffer, binary: isBinary }, [ab as ArrayBuffer]);
              });
              ws.on('error', () => ws.terminate());
              ws.once('close', (code, reason) => {
                o.webSockets.delete(ws);
                if (closed) return;
                closed = true;
                relay.post({ t: 'ws-close', code, reason: reason.toString('utf8') });
              });
            });
            return;
          case 'ws-msg':
            // One credit back per message handed to the client socket (upstream paused at zero).
            client?.send(Buffer.from(msg.data), { binary: msg.binary }, () => relay.grant(1));
            return;
          case 'ws-ack':
            unacked = Math.max(0, unacked - msg.bytes);
            return;
          case 'ws-close':
            closed = true;
            if (client) client.close(sendableCloseCode(msg.code), msg.reason);
            else
              refuse(
                refusalOf(new AivaultError('upstream_unreachable', 'the upstream closed the WebSocket')),
              );
            return;
          case 'error': {
            closed = true;
            const err = fromWire(msg.error);
            if (client) client.close(msg.error.error === 'policy_violation' ? 1008 : 1011, msg.error.error);
            else refuse(refusalOf(err));
            return;
          }
        }
      });
      socket.once('close', () => {
        if (!client && !closed) relay.abort();
      });
    })().catch((err: unknown) => refuse(refusalOf(err)));
  };

  /**
   * Run the call on a request worker and stream its answer through the shared relay (relay.ts: the same
   * credits, cancel and terminal semantics, and call events, as every other transport).
   */
  const dispatch = (res: ServerResponse, call: CallRequest, t: Tunnel): void => {
    const writeHead = (status: number, headers: readonly (readonly [string, string])[]): void => {
      // No prototype: a header named `__proto__` must group like any other name.
      const grouped = Object.create(null) as Record<string, string[]>;
      for (const [n, v] of headers) {
        if (n === 'content-length' || n === 'transfer-encoding' || n === 'connection' || n === 'keep-alive')
          continue;
        (grouped[n] ??= []).push(v);
      }
      res.writeHead(status, STATUS_CODES[status], grouped);
    };
    const sink: RelaySink = {
      head: (status, headers) => {
        if (!res.destroyed) writeHead(status, headers);
      },
      // The write callback runs once Node no longer holds the bytes (written, or dropped with the stream).
      chunk: (data, written) => {
        if (!res.destroyed) res.write(data, written && (() => written()));
        else written?.();
      },
      chunkBytesFreed: 'written',
      end: () => {
        if (!res.destroyed) res.end();
      },
      full: (status, headers, body) => {
        if (res.destroyed) return;
        writeHead(status, headers);
        res.end(body);
      },
      error: (error, headSent) => {
        if (res.destroyed) return;
        if (!headSent) sendError(res, fromWire(error));
        else res.destroy(); // mid-stream failure: the client sees a truncated body
      },
    };
    let relay: CallRelay;
    try {
      relay = startRelayedCall(
        pool,
        { ...call, context: t.context, stream: true },
        sink,
        () => !res.writableNeedDrain,
        () => res.once('drain', () => relay.drained()),
        'https-proxy',
      );
    } catch (err) {
      sendError(res, err);
      return;
    }
    // The client went away (or the tunnel was closed on revoke): stop the worker's call.
    res.once('close', () => relay.stop());
  };

  const onConnect = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const raw = socket as Socket;
    track(raw);
    raw.on('error', () => raw.destroy());
    const peer = raw.remoteAddress ?? '';
    void (async () => {
      if (!opts.allowRemote && !isLoopbackPeer(peer)) {
        raw.end(
          rawReply(403, {
            error: 'policy_violation',
            message: 'non-loopback clients are refused (aivaultd --http-allow-remote)',
          }),
        );
        return;
      }
      let target: ConnectTarget;
      try {
        target = parseConnectTarget(req.url ?? '');
      } catch (err) {
        raw.end(rawReply(400, toWire(err)));
        return;
      }
      let token: ProxyTokenRecord;
      try {
        token = await verifier.verifyProxy(proxyTokenFrom(req.headers['proxy-authorization']));
      } catch (err) {
        const wire = toWire(err);
        audit({
          kind: 'https-proxy.denied',
          host: target.policyHost,
          errorCode: wire.error,
          ...(peer ? { clientIp: peer } : {}),
        });
        raw.end(
          proxyAuthRequired(
            `${wire.message}: use the proxy URL http://aivault:<proxy token>@host:port (aivault run sets it)`,
          ),
        );
        return;
      }
      if (token.tunnelHosts?.includes(target.policyHost)) {
        blindTunnel(raw, head, target, token, peer);
        return;
      }
      const credentials = credentialsForHost(await snapshot(), registry, target.policyHost, token);
      if (credentials.length === 0) {
        audit({
          kind: 'https-proxy.denied',
          host: target.policyHost,
          errorCode: 'policy_violation',
          note: 'no capability serves this host',
          ...(peer ? { clientIp: peer } : {}),
        });
        raw.end(
          rawReply(403, {
            error: 'policy_violation',
            message: `no capability this proxy token grants serves ${target.policyHost}; to allow a plain tunnel without key injection: aivault run --tunnel-host ${target.policyHost} -- …`,
          }),
        );
        return;
      }
      let leaves: LeafIssuer;
      try {
        leaves = await getIssuer();
      } catch (err) {
        const wire = toWire(err);
        raw.end(rawReply(ERRORS[wire.error].http, wire));
        return;
      }
      raw.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.byteLength > 0) raw.unshift(head);
      const tls = new TLSSocket(raw, {
        isServer: true,
        secureContext: leaves.contextFor(target.host),
        ALPNProtocols: ['http/1.1'],
      });
      tls.on('error', () => tls.destroy());
      track(tls);
      tunnels.set(tls, { token, target, credentials, peer, context: contextOf(token, peer) });
      const o: OpenTunnel = {
        token,
        host: target.policyHost,
        peer,
        sockets: [raw, tls],
        webSockets: new Set(),
      };
      tunnelOf.set(tls, o);
      openTunnel(o);
      inner.emit('connection', tls);
    })().catch((err: unknown) => {
      const wire = toWire(err);
      if (!raw.destroyed) raw.end(rawReply(ERRORS[wire.error].http, wire));
    });
  };

  /** `--tunnel-host`: bytes both ways, nothing inspected or injected (audited as such). */
  const blindTunnel = (
    raw: Socket,
    head: Buffer,
    target: ConnectTarget,
    token: ProxyTokenRecord,
    peer: string,
  ): void => {
    const up = netConnect(target.port, target.host);
    track(up);
    up.on('error', () => {
      if (!raw.destroyed)
        raw.end(
          rawReply(502, { error: 'upstream_unreachable', message: `cannot reach ${target.policyHost}` }),
        );
      up.destroy();
    });
    up.once('connect', () => {
      audit({
        kind: 'https-proxy.tunnel',
        host: target.policyHost,
        note: `blind tunnel (token ${token.id})`,
        ...(peer ? { clientIp: peer } : {}),
      });
      raw.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.byteLength > 0) up.write(head);
      openTunnel({ token, host: target.policyHost, peer, sockets: [raw, up], webSockets: new Set() });
      raw.pipe(up).pipe(raw);
      raw.once('close', () => up.destroy());
      up.once('close', () => raw.destroy());
    });
  };

  const outer: Server = createServer((req, res) => {
    // Plain (non-CONNECT) requests: only the health probe `aivault run` uses; plain http is not proxied.
    if (req.method === 'GET' && req.url === '/aivault/health') {
      sendJson(res, 200, { ok: true, vault: opts.vaultTag, pid: process.pid, httpsProxy: true });
      return;
    }
    sendJson(res, 405, {
      error: 'invalid_request',
      message: 'this is an HTTPS (CONNECT) proxy; plain http:// requests are not proxied',
    });
  });
  outer.on('connect', onConnect);
  outer.on('clientError', (_err, socket: Duplex) => socket.destroy());
  outer.on('connection', (s: Socket) => track(s));

  await new Promise<void>((resolve, reject) => {
    outer.once('error', reject);
    outer.listen(opts.port, opts.host, () => {
      outer.off('error', reject);
      resolve();
    });
  });
  // Create the CA now when the vault is unlocked (or as soon as it is), so its cert is on disk before the
  // first client needs it: `aivault run` waits for the cert after restarting a passphrase vault's daemon.
  await getIssuer().catch(() => undefined);
  const createCaOnUnlock = (): void => void getIssuer().catch(() => undefined);
  pool.onUnlocked.add(createCaOnUnlock);
  const addr = outer.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  return {
    host: opts.host,
    port,
    caCertPath: caCertPath(config.vaultDir),
    stopListening: () => {
      pool.onUnlocked.delete(createCaOnUnlock);
      pool.onLocked.delete(onLocked);
      if (recheckTimer) clearInterval(recheckTimer);
      recheckTimer = undefined;
      outer.close();
      inner.close();
    },
    openTunnels: () => open.size,
    closeConnections: () => {
      open.clear();
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
  };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s.replace(/\+/g, ' '));
  } catch {
    return s;
  }
}

/**
 * The whole body in its own ArrayBuffer (it is transferred to a request worker: never a view on Node's
 * shared Buffer pool), or undefined when it exceeds the bound.
 */
function readBody(req: IncomingMessage): Promise<Uint8Array<ArrayBuffer> | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    req.on('data', (c: Buffer) => {
      total += c.byteLength;
      if (total > MAX_BODY_BYTES) {
        req.destroy();
        resolve(undefined);
        return;
      }
      chunks.push(c);
    });
    req.once('end', () => {
      const out = new Uint8Array(total);
      let at = 0;
      for (const c of chunks) {
        out.set(c, at);
        at += c.byteLength;
      }
      resolve(out);
    });
    req.once('error', reject);
  });
}

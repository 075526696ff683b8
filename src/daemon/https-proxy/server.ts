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
 *   vault's CA (ca.ts); each inner request is matched to a capability (match.ts) and dispatched through
 *   the request workers exactly like `/v/` passthrough (pool.startCall with a passthrough envelope), so
 *   policy, auth injection, scrubbing and audit are the same code.
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
import type { Config } from '../../config/env.js';
import { AivaultError, ERRORS, fromWire, toWire } from '../../errors.js';
import type { Credential, Envelope } from '../../broker/types.js';
import type { AuthSpec } from '../../registry/types.js';
import { registry } from '../../registry/index.js';
import { createCatalogCache } from '../../catalog/cache.js';
import { AuditLog, type AuditInput } from '../../audit/audit-log.js';
import { vaultPaths } from '../../vault/index.js';
import { TokenVerifier, type ProxyTokenRecord } from '../../tokens/tokens.js';
import type { DaemonPool } from '../pool.js';
import { isLoopbackPeer } from '../http-passthrough.js';
import { PASSTHROUGH_DROP } from '../http-server.js';
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
}

export interface HttpsProxyServer {
  readonly host: string;
  readonly port: number;
  /** The vault CA's public cert (exists once the CA was created; absent while the vault is locked). */
  readonly caCertPath: string;
  stopListening(): void;
  closeConnections(): void;
}

/** What an inner TLS connection was opened for. */
interface Tunnel {
  readonly token: ProxyTokenRecord;
  readonly target: ConnectTarget;
  readonly credentials: readonly Credential[];
  readonly peer: string;
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

export async function startHttpsProxy(
  pool: DaemonPool,
  config: Config,
  opts: HttpsProxyOptions,
): Promise<HttpsProxyServer> {
  const paths = vaultPaths(config);
  const verifier = new TokenVerifier(config.vaultDir);
  const snapshot = createCatalogCache(paths, registry);
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

  const inner = createServer({ requestTimeout: 0 }, (req, res) => handleInner(req, res));
  inner.on('clientError', (_err, socket) => socket.destroy());
  // WebSocket through the proxy is not served yet: refuse rather than pass an unbrokered upgrade.
  inner.on('upgrade', (_req, socket: Duplex) => {
    socket.end(
      rawReply(501, {
        error: 'invalid_request',
        message: 'WebSocket upgrades through the HTTPS proxy are not supported; use /aivault/ws',
      }),
    );
  });

  const handleInner = (req: IncomingMessage, res: ServerResponse): void => {
    const t = tunnels.get(req.socket);
    if (!t) {
      res.destroy();
      return;
    }
    void (async () => {
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
      // The token may have been revoked or expired since the CONNECT.
      if (!(await verifier.activeProxyTokenIds()).has(t.token.id)) {
        sendError(res, new AivaultError('token_invalid', 'proxy token expired or was revoked'));
        res.once('finish', () => req.socket.destroy());
        return;
      }
      if (!url.startsWith('/')) {
        sendError(res, new AivaultError('invalid_request', 'inner requests use origin-form paths'));
        return;
      }
      // Placeholder keys: a provider's placeholder goes only to that provider's host.
      const own = new Set(t.credentials.map((c) => c.provider));
      const found: string[] = [];
      for (let i = 1; i < req.rawHeaders.length; i += 2) {
        found.push(...placeholderProviders(req.rawHeaders[i] as string));
      }
      let decodedQuery = query;
      try {
        decodedQuery = decodeURIComponent(query.replace(/\+/g, ' '));
      } catch {
        // keep the raw query
      }
      found.push(...placeholderProviders(query), ...placeholderProviders(decodedQuery));
      const foreign = found.find((p) => !own.has(p));
      if (foreign !== undefined) {
        const code = sendError(
          res,
          new AivaultError(
            'policy_violation',
            `a placeholder key for ${foreign} was sent to ${t.target.host}; refused (placeholders are only replaced for their own provider's host)`,
          ),
        );
        audit({ ...base, errorCode: code, provider: foreign, note: 'placeholder for another provider' });
        return;
      }
      const snap = await snapshot();
      const m = matchInner({
        snapshot: snap,
        registry,
        credentials: t.credentials,
        method,
        path,
        tokenCapabilities: t.token.capabilities,
      });
      if (!m.ok) {
        const code = sendError(res, m.error);
        audit({ ...base, errorCode: code, note: 'https proxy: no capability matched' });
        return;
      }
      const cred = m.value.credential;
      const drop = new Set([...DROP, ...authHeaderNames(cred.auth)]);
      const headers: [string, string][] = [];
      for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
        const name = (req.rawHeaders[i] as string).toLowerCase();
        const value = req.rawHeaders[i + 1] as string;
        // A header carrying our own placeholder is the caller's stand-in key: the worker injects the real one.
        if (drop.has(name) || placeholderProviders(value).length > 0) continue;
        headers.push([name, value]);
      }
      const keptQuery = query
        .split('&')
        .filter((kv) => kv !== '' && placeholderProviders(safeDecode(kv)).length === 0)
        .join('&');
      const body = await readBody(req);
      if (body === undefined) {
        sendError(
          res,
          new AivaultError('body_too_large', `request bodies are limited to ${MAX_BODY_BYTES} bytes`),
        );
        return;
      }
      const envelope: Envelope = {
        capability: m.value.capability,
        credential: cred.id,
        request: {
          method,
          path: keptQuery ? `${path}?${keptQuery}` : path,
          headers,
          ...(body.byteLength > 0 ? { bodyBase64: body.toString('base64') } : {}),
        },
      };
      dispatch(req, res, envelope, t);
    })().catch((err: unknown) => sendError(res, err));
  };

  /** Run the call on a request worker and stream its answer, with credit-based backpressure. */
  const dispatch = (req: IncomingMessage, res: ServerResponse, envelope: Envelope, t: Tunnel): void => {
    let finished = false;
    let handle: ReturnType<DaemonPool['startCall']>;
    const writeHead = (status: number, headers: readonly (readonly [string, string])[]): void => {
      const grouped: Record<string, string[]> = {};
      for (const [n, v] of headers) {
        if (n === 'content-length' || n === 'transfer-encoding' || n === 'connection' || n === 'keep-alive')
          continue;
        (grouped[n] ??= []).push(v);
      }
      res.writeHead(status, STATUS_CODES[status], grouped);
    };
    try {
      handle = pool.startCall(
        {
          envelope,
          context: {
            ...(t.peer ? { clientIp: t.peer } : {}),
            ...(t.token.workspaceId !== undefined ? { workspaceId: t.token.workspaceId } : {}),
            ...(t.token.groupId !== undefined ? { groupId: t.token.groupId } : {}),
            token: {
              capabilities: t.token.capabilities,
              ...(t.token.credential !== undefined ? { credential: t.token.credential } : {}),
            },
          },
          stream: true,
        },
        {
          onMessage: (msg) => {
            if (finished || res.destroyed) return;
            switch (msg.t) {
              case 'head':
                writeHead(msg.status, msg.headers);
                return;
              case 'chunk':
                if (res.write(Buffer.from(msg.data))) handle.grant(1);
                else res.once('drain', () => handle.grant(1));
                return;
              case 'end':
                finished = true;
                res.end();
                return;
              case 'full':
                finished = true;
                writeHead(msg.status, msg.headers);
                res.end(Buffer.from(msg.body));
                return;
              case 'error':
                finished = true;
                if (!res.headersSent) sendError(res, fromWire(msg.error));
                else res.destroy(); // mid-stream failure: the client sees a truncated body
                return;
            }
          },
        },
      );
    } catch (err) {
      sendError(res, err);
      return;
    }
    res.once('close', () => {
      if (finished) return;
      finished = true;
      handle.abort();
      handle.grant(1);
    });
    void req;
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
      tunnels.set(tls, { token, target, credentials, peer });
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
      outer.close();
      inner.close();
    },
    closeConnections: () => {
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

/** The whole body, or undefined when it exceeds the bound. */
function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
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
    req.once('end', () => resolve(Buffer.concat(chunks, total)));
    req.once('error', reject);
  });
}

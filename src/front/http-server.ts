/**
 * The loopback HTTP/WebSocket listener (SPEC §8), on the SAME uWS app and request pool as the unix
 * socket front. Routes:
 *   GET  /aivault/health            liveness + which vault (no auth, no secrets): here
 *   POST /aivault/proxy             JSON envelope → upstream status, filtered headers, streamed body
 *   ANY  /v/{credential}/…          passthrough for unchanged SDKs (base-URL swap): http/call-routes.ts
 *   GET  /aivault/ws                WebSocket relay (first frame {capability, path}): http/ws-relay.ts
 *   GET  /metrics                   Prometheus metrics (operator token; src/front/metrics.ts)
 *   …    /aivault/{credentials,capabilities,secrets,tokens}   operator API (http-admin.ts)
 *   …    /aivault/ui/…                   operator dashboard (dashboard/routes.ts; session cookie)
 *                                   (these three: http/operator-routes.ts)
 * Proxy routes need a proxy token (`avp_…`); operator routes an operator token (`avo_…`). Peers that are
 * not on loopback — and WebSocket upgrades from a web page whose Origin is not on loopback — are refused
 * unless the operator opted in (`--http-allow-remote`). A relay or an HTTP stream lives only as long as its
 * token: expiry or revocation closes it (1008 for a relay; a 401 or a cut connection for a stream). This
 * thread checks tokens (hashes only), routes, and moves bytes: request bodies are transferred to the
 * request worker, which parses the proxy's JSON, picks the passthrough capability and makes every policy
 * decision; answers come back through the shared relay (relay.ts). No secret value ever reaches this
 * thread. This file wires the parts together and owns the listener's lifetime (listen, shutdown); every
 * route starts with http/request-start.ts and answers through http/response.ts; http/proxy-tokens.ts
 * ends streams and relays whose token died.
 */
import { vaultTag } from './vault-tag.js';
import type { Config } from '../core/config/env.js';
import { AivaultError } from '../core/errors.js';
import { AuditLog, type AuditInput } from '../stores/audit/audit-log.js';
import { vaultPaths } from '../stores/vault/index.js';
import { TokenVerifier } from '../stores/tokens/tokens.js';
import type { DaemonPool } from '../pool/daemon-pool.js';
import {
  closeListenSocket,
  localPort,
  type HttpResponse,
  type ListenSocket,
  type TemplatedApp,
  type WebSocket,
} from './uws.js';
import type { ApprovalStore } from './approvals.js';
import type { DashboardAuth } from './dashboard/session.js';
import type { DaemonMetrics } from './metrics.js';
import type { ListenerContext } from './http/context.js';
import { createBegin } from './http/request-start.js';
import { writeError, writeJson } from './http/response.js';
import { createTokenRecheck, WS_TOKEN_RECHECK_MS } from './http/proxy-tokens.js';
import { mountCallRoutes } from './http/call-routes.js';
import { mountMetricsRoute, mountOperatorRoutes } from './http/operator-routes.js';
import { mountWsRelay, type WsData } from './http/ws-relay.js';

export interface HttpServerOptions {
  readonly host: string;
  readonly port: number;
  /** Accept non-loopback peers (operator opt-in). */
  readonly allowRemote: boolean;
  /** Token re-check interval for open relays and streams (default WS_TOKEN_RECHECK_MS). Tests only. */
  readonly tokenRecheckMs?: number;
  /** Silence before a /aivault/ws client is pinged (default WS_IDLE_TIMEOUT_S). Tests only. */
  readonly wsIdleTimeoutS?: number;
  /** Dashboard logins and sessions (dashboard/session.ts): serves /aivault/ui when given. */
  readonly dashboard?: DashboardAuth;
  /** Pending approvals shown (and decided) on the dashboard. */
  readonly approvals?: ApprovalStore;
  /** Serves GET /metrics (operator token) and counts the listener's own refusals. */
  readonly metrics?: DaemonMetrics;
}

export interface HttpServer {
  readonly host: string;
  readonly port: number;
  stopListening(): void;
  /** Close every /aivault/ws relay (they are long-lived: shutdown must not wait for them). */
  closeWebSockets(): void;
  closeConnections(): void;
}

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
  const tag = vaultTag(config.vaultDir);
  const begin = createBegin({ responses, allowRemote: opts.allowRemote, audit });
  const ctx: ListenerContext = {
    pool,
    verifier,
    audit,
    begin,
    metrics: opts.metrics,
    allowRemote: opts.allowRemote,
  };
  const recheck = createTokenRecheck({
    verifier,
    audit,
    intervalMs: opts.tokenRecheckMs ?? WS_TOKEN_RECHECK_MS,
    sockets,
  });

  // Routes, mounted in this order (as they always were).
  if (opts.metrics) mountMetricsRoute(app, ctx, opts.metrics);

  app.get('/aivault/health', (res, req) => {
    const b = begin(res, req);
    if (!b) return;
    writeJson(res, b.st, 200, { ok: true, vault: tag, pid: process.pid });
  });

  mountCallRoutes(app, ctx, responses, recheck);

  const ui = mountOperatorRoutes(app, ctx, {
    config,
    paths,
    auditLog,
    dashboard: opts.dashboard,
    approvals: opts.approvals,
  });

  app.any('/*', (res, req) => {
    const b = begin(res, req);
    if (!b) return;
    writeError(res, b.st, new AivaultError('not_found', 'no such route'));
  });

  mountWsRelay(app, ctx, sockets, recheck, opts.wsIdleTimeoutS);

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
      recheck.stop();
      ui?.closeViewers();
      for (const ws of [...sockets]) ws.end(1001, 'aivaultd shutting down');
    },
    closeConnections() {
      recheck.stop();
      ui?.closeViewers();
      recheck.forgetStreams();
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

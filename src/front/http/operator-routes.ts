/**
 * The operator routes of the loopback HTTP listener (aivaultd main thread), all behind an operator token
 * (`avo_…`) or a dashboard session: `GET /metrics` (Prometheus text, ../metrics.ts), the operator API
 * under /aivault/{credentials,capabilities,secrets,tokens} (../http-admin.ts) and the dashboard under
 * /aivault/ui (../dashboard/routes.ts). Denials are audited.
 */
import type { Config } from '../../core/config/env.js';
import type { BrokerSnapshot } from '../../core/broker/types.js';
import { registry } from '../../core/registry/index.js';
import { createCatalogCache } from '../../stores/catalog/cache.js';
import type { AuditLog } from '../../stores/audit/audit-log.js';
import type { VaultPaths } from '../../stores/vault/index.js';
import type { TemplatedApp } from '../uws.js';
import { handleAdmin, type AdminContext } from '../http-admin.js';
import type { ApprovalStore } from '../approvals.js';
import type { DashboardAuth } from '../dashboard/session.js';
import { mountDashboard } from '../dashboard/routes.js';
import type { DaemonMetrics } from '../metrics.js';
import type { ListenerContext } from './context.js';
import { readBody, writeError, writeJson, writeMetrics } from './response.js';

/**
 * `GET /metrics`. Operator token required (a proxy token gets operator_auth_required). Denials are
 * audited; a successful scrape is not (a scraper every 15 s would fill the audit log).
 */
export function mountMetricsRoute(app: TemplatedApp, ctx: ListenerContext, metrics: DaemonMetrics): void {
  const { verifier, audit, begin } = ctx;
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

/** What the operator API and the dashboard need beyond the listener's common context. */
export interface OperatorRoutesOptions {
  readonly config: Config;
  readonly paths: VaultPaths;
  readonly auditLog: AuditLog;
  /** Dashboard logins and sessions: serves /aivault/ui when given. */
  readonly dashboard: DashboardAuth | undefined;
  /** Pending approvals shown (and decided) on the dashboard (default: the pool's). */
  readonly approvals: ApprovalStore | undefined;
}

/** Mount the dashboard (when configured) and then the operator API's `/aivault/*`. */
export function mountOperatorRoutes(
  app: TemplatedApp,
  ctx: ListenerContext,
  operator: OperatorRoutesOptions,
): { closeViewers(): void } | undefined {
  const { pool, verifier, audit, begin } = ctx;
  const { config, paths, auditLog } = operator;
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
  const ui = operator.dashboard
    ? mountDashboard(app, {
        auth: operator.dashboard,
        allowRemote: ctx.allowRemote,
        vaultDir: config.vaultDir,
        begin,
        snapshot,
        auditLog,
        auditKey: () => pool.auditKey(),
        audit,
        rateLimit: pool.rateLimit,
        approvals: operator.approvals ?? pool.approvals,
        afterWrite: () => pool.generation.bump(),
      })
    : undefined;
  app.any('/aivault/*', (res, req) => {
    const b = begin(res, req);
    if (!b) return;
    const { st, peer } = b;
    const method = req.getCaseSensitiveMethod().toUpperCase();
    const url = req.getUrl();
    const query = req.getQuery() ?? '';
    const auth = req.getHeader('authorization');
    const token = /^Bearer\s+(\S+)$/i.exec(auth.trim())?.[1];
    const run = (body: Uint8Array<ArrayBuffer> | undefined): void => {
      const request = { method, url, query, token, body: body && Buffer.from(body.buffer), peer };
      void handleAdmin(adminCtx, request).then(
        (r) => writeJson(res, st, r.status, r.body),
        (err: unknown) => writeError(res, st, err),
      );
    };
    if (method === 'POST' || method === 'PATCH' || method === 'PUT') {
      readBody(res, st, req.getHeader('content-length'), run);
    } else run(undefined);
  });
  return ui;
}

/**
 * The dashboard's routes on aivaultd's loopback HTTP listener (main thread), all under /aivault/ui:
 *   GET  /aivault/ui/login?code=…   one-time code → session cookie, 303 to a URL without the code
 *   GET  /aivault/ui/ | calls | audit | limits | tokens | approvals    server-rendered pages (session)
 *   GET  /aivault/ui/app.js | app.css                                 the only static files
 *   POST /aivault/ui/tokens/revoke | approvals/decide | logout        session + same Origin + CSRF token
 *   WS   /aivault/ui/live                                             call events (session cookie)
 * Every answer carries a strict Content-Security-Policy (self only, no inline code), X-Frame-Options DENY
 * and Referrer-Policy no-referrer. The Host must be a loopback name (DNS rebinding) unless the operator
 * allowed remote peers. State changes are audited (kind `dashboard.*`); refusals too.
 */
import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket } from '../uws.js';
import type { BrokerSnapshot } from '../../core/broker/types.js';
import type { AuditInput, AuditLog } from '../../stores/audit/audit-log.js';
import { RateLimiter } from '../../core/threads/rate-limit.js';
import { listTokens, revokeToken } from '../../stores/tokens/tokens.js';
import { isAivaultError } from '../../core/errors.js';
import type { ApprovalStore } from '../approvals.js';
import { tokenCaller } from '../../core/broker/approval-caller.js';
import { subscribeCalls, type CallEvent } from '../call-events.js';
import { isLoopbackOrigin } from '../http-passthrough.js';
import {
  CLEARED_COOKIE,
  UI_PREFIX,
  sameOrigin,
  sessionCookie,
  type DashboardAuth,
  type DashboardSession,
} from './session.js';
import {
  approvalsPage,
  auditPage,
  callsPage,
  capabilitiesPage,
  layout,
  limitsPage,
  loginFailedPage,
  pageUrl,
  tokensPage,
  type PageName,
} from './html.js';
import { approvalView, capabilityView, filterAudit, limitView, parseAuditFilter, tokenView } from './data.js';
import { APP_CSS, APP_JS } from './assets.js';

export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/** Largest form body the UI accepts (a revoke or a decision is a few hundred bytes). */
const MAX_FORM_BYTES = 16 * 1024;
/** A viewer that stops reading gets no more events past this (the daemon never queues for it). */
const MAX_VIEWER_BUFFER = 1024 * 1024;

interface ReqState {
  aborted: boolean;
  finished: boolean;
}

export interface DashboardContext {
  readonly auth: DashboardAuth;
  readonly allowRemote: boolean;
  readonly vaultDir: string;
  /** The listener's common start of a request (abort tracking, framing, peer check): http/request-start.ts */
  readonly begin: (res: HttpResponse, req: HttpRequest) => { st: ReqState; peer: string } | undefined;
  readonly snapshot: () => Promise<BrokerSnapshot>;
  readonly auditLog: AuditLog;
  readonly auditKey: () => Promise<Uint8Array>;
  readonly audit: (event: AuditInput) => void;
  readonly rateLimit: SharedArrayBuffer;
  /** Pending approvals, when the daemon has them (approvals.ts). */
  readonly approvals?: ApprovalStore | undefined;
  /** After a write (token revoke): bump the vault generation. */
  readonly afterWrite: () => void;
}

interface Viewer {
  session: string;
  unsubscribe?: () => void;
}

const PAGES: ReadonlySet<string> = new Set(['calls', 'audit', 'limits', 'tokens', 'approvals']);

function secured(res: HttpResponse, status: string, type: string): HttpResponse {
  return res
    .writeStatus(status)
    .writeHeader('content-type', type)
    .writeHeader('content-security-policy', CONTENT_SECURITY_POLICY)
    .writeHeader('x-frame-options', 'DENY')
    .writeHeader('referrer-policy', 'no-referrer')
    .writeHeader('x-content-type-options', 'nosniff')
    .writeHeader('cross-origin-opener-policy', 'same-origin')
    .writeHeader('cross-origin-resource-policy', 'same-origin')
    .writeHeader('cache-control', 'no-store');
}

/** Register the UI routes. Call before the listener's `/aivault/*` catch-all. */
export function mountDashboard(app: TemplatedApp, ctx: DashboardContext): { closeViewers(): void } {
  const limiter = new RateLimiter(ctx.rateLimit);
  const viewers = new Set<WebSocket<Viewer>>();
  // A session that ends early (logout, vault lock) takes its live-calls sockets with it at once, not at
  // the next event they would have been sent.
  const endViewers = (code: number, reason: string, all: boolean): void => {
    for (const ws of [...viewers])
      if (all || !ctx.auth.isLive(ws.getUserData().session)) ws.end(code, reason);
  };
  const offEnded = ctx.auth.onEnded(() => endViewers(1008, 'session ended', false));

  const send = (
    res: HttpResponse,
    st: ReqState,
    status: string,
    type: string,
    body: string,
    extra: [string, string][] = [],
  ): void => {
    if (st.aborted || st.finished) return;
    st.finished = true;
    res.cork(() => {
      const r = secured(res, status, type);
      for (const [n, v] of extra) r.writeHeader(n, v);
      r.end(body);
    });
  };
  const redirect = (res: HttpResponse, st: ReqState, to: string, extra: [string, string][] = []): void =>
    send(res, st, '303 See Other', 'text/plain; charset=utf-8', '', [['location', to], ...extra]);
  const refuse = (res: HttpResponse, st: ReqState, status: string, message: string): void =>
    send(res, st, status, 'text/plain; charset=utf-8', message);

  const hostOk = (host: string): boolean => ctx.allowRemote || isLoopbackOrigin(`http://${host}`);

  const renderPage = async (
    page: PageName,
    session: DashboardSession,
    query: URLSearchParams,
  ): Promise<string> => {
    switch (page) {
      case 'capabilities': {
        const v = capabilityView(await ctx.snapshot());
        return layout(page, session.csrf, capabilitiesPage(v.ready, v.waiting));
      }
      case 'calls':
        return layout(page, session.csrf, callsPage());
      case 'audit': {
        const filter = parseAuditFilter(query);
        let chain: { ok: boolean; text: string } | undefined;
        if (query.get('verify') === '1') {
          const r = await ctx.auditLog.verify(await ctx.auditKey());
          chain = r.ok
            ? { ok: true, text: `chain intact: ${r.events} events in ${r.files} day files verified` }
            : { ok: false, text: `chain broken in ${r.file} line ${r.line}: ${r.problem} (${r.reason})` };
        }
        const events = await ctx.auditLog.list({ limit: 2000 });
        return layout(page, session.csrf, auditPage(filterAudit(events, filter, Date.now()), filter, chain));
      }
      case 'limits':
        return layout(page, session.csrf, limitsPage(limitView(await ctx.snapshot(), limiter)));
      case 'tokens': {
        const notice = query.get('revoked');
        return layout(
          page,
          session.csrf,
          tokensPage(tokenView(await listTokens(ctx.vaultDir)), session.csrf),
          notice ? `Token ${notice} revoked.` : undefined,
        );
      }
      case 'approvals':
        return layout(
          page,
          session.csrf,
          approvalsPage(ctx.approvals ? approvalView(ctx.approvals.list()) : undefined, session.csrf),
        );
    }
  };

  /** A POST the UI made: same-origin, session, CSRF token. Resolves the parsed form, or refuses. */
  const readForm = (
    res: HttpResponse,
    st: ReqState,
    session: DashboardSession | undefined,
    origin: string,
    host: string,
    fetchSite: string,
    what: string,
    peer: string,
    cb: (form: URLSearchParams, session: DashboardSession) => void,
  ): void => {
    const denied = (why: string): void => {
      ctx.audit({
        kind: 'dashboard.refused',
        errorCode: 'policy_violation',
        note: `${what}: ${why}`,
        clientIp: peer,
      });
      refuse(res, st, '403 Forbidden', `refused: ${why}`);
    };
    if (!sameOrigin(origin, host, fetchSite)) {
      res.onData(() => undefined);
      return denied('cross-origin request');
    }
    if (!session) {
      res.onData(() => undefined);
      return denied('no session');
    }
    const parts: Buffer[] = [];
    let total = 0;
    res.onData((ab, last) => {
      if (st.finished || st.aborted) return;
      total += ab.byteLength;
      if (total > MAX_FORM_BYTES) return refuse(res, st, '413 Payload Too Large', 'form too large');
      parts.push(Buffer.from(ab.slice(0)));
      if (!last) return;
      const form = new URLSearchParams(Buffer.concat(parts).toString('utf8'));
      if (!ctx.auth.csrfOk(session, form.get('csrf') ?? undefined))
        return denied('missing or wrong CSRF token');
      cb(form, session);
    });
  };

  const handle = (res: HttpResponse, req: HttpRequest): void => {
    const b = ctx.begin(res, req);
    if (!b) return;
    const { st, peer } = b;
    const method = req.getCaseSensitiveMethod().toUpperCase();
    const url = req.getUrl();
    const query = new URLSearchParams(req.getQuery() ?? '');
    const host = req.getHeader('host');
    const origin = req.getHeader('origin');
    const cookie = req.getHeader('cookie');
    const fetchSite = req.getHeader('sec-fetch-site');
    if (!hostOk(host)) {
      if (method === 'POST') res.onData(() => undefined);
      return refuse(res, st, '421 Misdirected Request', 'the dashboard answers only on a loopback host name');
    }
    const session = ctx.auth.session(cookie);
    const sub = url === UI_PREFIX ? '' : url.slice(UI_PREFIX.length + 1);

    if (method === 'GET' && sub === 'app.js')
      return send(res, st, '200 OK', 'text/javascript; charset=utf-8', APP_JS);
    if (method === 'GET' && sub === 'app.css')
      return send(res, st, '200 OK', 'text/css; charset=utf-8', APP_CSS);
    if (method === 'GET' && sub === 'login') {
      const redeemed = ctx.auth.redeem(query.get('code') ?? '');
      if (!redeemed) {
        ctx.audit({
          kind: 'dashboard.login',
          errorCode: 'token_invalid',
          note: 'login code unknown, used or expired',
          clientIp: peer,
        });
        return send(res, st, '403 Forbidden', 'text/html; charset=utf-8', loginFailedPage());
      }
      ctx.audit({ kind: 'dashboard.login', actor: 'operator', clientIp: peer });
      return redirect(res, st, `${UI_PREFIX}/`, [['set-cookie', sessionCookie(redeemed)]]);
    }
    if (method === 'GET' && url === UI_PREFIX) return redirect(res, st, `${UI_PREFIX}/`);

    if (method === 'POST') {
      const route = sub;
      if (route === 'logout') {
        return readForm(res, st, session, origin, host, fetchSite, 'logout', peer, (_f, s) => {
          ctx.auth.end(s.id);
          redirect(res, st, `${UI_PREFIX}/login`, [['set-cookie', CLEARED_COOKIE]]);
        });
      }
      if (route === 'tokens/revoke') {
        return readForm(res, st, session, origin, host, fetchSite, 'token revoke', peer, (form) => {
          const id = form.get('id') ?? '';
          void revokeToken(ctx.vaultDir, id).then(
            () => {
              ctx.afterWrite();
              ctx.approvals?.forgetCaller(tokenCaller(id)); // as the CLI's revoke (approval-staleness.ts)
              ctx.audit({
                kind: 'dashboard.token.revoke',
                actor: 'operator',
                note: `token ${id}`,
                clientIp: peer,
              });
              redirect(res, st, `${pageUrl('tokens')}?revoked=${encodeURIComponent(id)}`);
            },
            (err: unknown) => {
              ctx.afterWrite();
              const code = isAivaultError(err) ? err.code : 'internal';
              ctx.audit({
                kind: 'dashboard.token.revoke',
                errorCode: code,
                note: `token ${id}`,
                clientIp: peer,
              });
              refuse(
                res,
                st,
                code === 'not_found' ? '404 Not Found' : '500 Internal Server Error',
                `revoke failed: ${code}`,
              );
            },
          );
        });
      }
      if (route === 'approvals/decide') {
        return readForm(res, st, session, origin, host, fetchSite, 'approval', peer, (form) => {
          const id = form.get('id') ?? '';
          const decision = form.get('decision');
          if (!ctx.approvals || (decision !== 'approved' && decision !== 'denied')) {
            return refuse(res, st, '400 Bad Request', 'no such decision');
          }
          const pending = ctx.approvals.get(id);
          if (!ctx.approvals.decide(id, decision, 'dashboard')) {
            return refuse(res, st, '409 Conflict', 'that call is no longer waiting (decided or timed out)');
          }
          ctx.audit({
            kind: 'dashboard.approval',
            actor: 'operator',
            note: `${decision} ${id}`,
            ...(pending
              ? { capability: pending.capability, method: pending.method, path: pending.path }
              : {}),
            clientIp: peer,
          });
          redirect(res, st, pageUrl('approvals'));
        });
      }
      res.onData(() => undefined);
      return refuse(res, st, '404 Not Found', 'no such route');
    }

    if (method !== 'GET') return refuse(res, st, '405 Method Not Allowed', 'GET or POST only');
    const page: PageName | undefined =
      sub === '' ? 'capabilities' : PAGES.has(sub) ? (sub as PageName) : undefined;
    if (!page) return refuse(res, st, '404 Not Found', 'no such page');
    if (!session) {
      return send(res, st, '401 Unauthorized', 'text/html; charset=utf-8', loginFailedPage());
    }
    renderPage(page, session, query).then(
      (html) => send(res, st, '200 OK', 'text/html; charset=utf-8', html),
      (err: unknown) => {
        const code = isAivaultError(err) ? err.code : 'internal';
        refuse(res, st, '500 Internal Server Error', `the page could not be read: ${code}`);
      },
    );
  };

  app.any(UI_PREFIX, handle);
  app.any(`${UI_PREFIX}/*`, handle);

  app.ws<Viewer>(`${UI_PREFIX}/live`, {
    maxPayloadLength: 1024,
    idleTimeout: 120,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      const origin = req.getHeader('origin');
      const host = req.getHeader('host');
      const session = ctx.auth.session(req.getHeader('cookie'));
      const peer = Buffer.from(res.getRemoteAddressAsText()).toString('utf8');
      const why = !hostOk(host)
        ? 'host is not a loopback name'
        : !sameOrigin(origin, host, req.getHeader('sec-fetch-site'))
          ? 'cross-origin upgrade'
          : !session
            ? 'no session'
            : undefined;
      if (why || !session) {
        ctx.audit({
          kind: 'dashboard.refused',
          errorCode: 'policy_violation',
          note: `live: ${why ?? ''}`,
          clientIp: peer,
        });
        res.writeStatus('403 Forbidden').end(`refused: ${why ?? ''}`);
        return;
      }
      res.upgrade<Viewer>(
        { session: session.id },
        req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open: (ws) => {
      viewers.add(ws);
      const { session } = ws.getUserData();
      const push = (text: string): void => {
        // The feed lives only as long as its session (logout, expiry).
        if (!ctx.auth.isLive(session)) {
          ws.getUserData().unsubscribe?.();
          ws.end(1008, 'session ended');
          return;
        }
        if (ws.getBufferedAmount() < MAX_VIEWER_BUFFER) ws.send(text, false);
      };
      const offCalls = subscribeCalls((ev: CallEvent) => push(JSON.stringify(ev)));
      const offApprovals = ctx.approvals?.subscribe((ev) =>
        push(JSON.stringify({ type: 'approval', event: ev.type })),
      );
      ws.getUserData().unsubscribe = () => {
        offCalls();
        offApprovals?.();
      };
    },
    close: (ws) => {
      viewers.delete(ws);
      ws.getUserData().unsubscribe?.();
    },
  });

  return {
    closeViewers() {
      offEnded();
      endViewers(1001, 'aivaultd shutting down', true);
    },
  };
}

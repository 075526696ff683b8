/**
 * Server-rendered pages of the operator dashboard (issue 16). Pure: data in, HTML text out. Every
 * value is escaped here; the pages carry no inline script or style (the Content-Security-Policy forbids
 * them) and link only to this listener's own /aivault/ui/app.{js,css}. Nothing on a page can hold a secret
 * value or a token: the data views (data.ts) carry metadata only.
 */
import { UI_PREFIX } from './session.js';

const ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** HTML-escape text for element content and quoted attribute values. */
export function esc(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

export type PageName = 'capabilities' | 'calls' | 'audit' | 'limits' | 'tokens' | 'approvals';

const NAV: readonly (readonly [PageName, string])[] = [
  ['capabilities', 'Capabilities'],
  ['calls', 'Live calls'],
  ['audit', 'Audit'],
  ['limits', 'Rate limits'],
  ['tokens', 'Tokens'],
  ['approvals', 'Approvals'],
];

export const pageUrl = (page: PageName): string =>
  page === 'capabilities' ? `${UI_PREFIX}/` : `${UI_PREFIX}/${page}`;

const time = (ms: number): string => new Date(ms).toISOString().replace('T', ' ').slice(0, 19);

/** A POST form with the session's CSRF token (the only way the UI changes state). */
function postForm(
  action: string,
  csrf: string,
  fields: Record<string, string>,
  button: string,
  cls = '',
): string {
  const hidden = Object.entries(fields)
    .map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`)
    .join('');
  return `<form method="post" action="${esc(action)}" class="inline"><input type="hidden" name="csrf" value="${esc(csrf)}">${hidden}<button type="submit"${cls ? ` class="${esc(cls)}"` : ''}>${esc(button)}</button></form>`;
}

export function layout(page: PageName, csrf: string, body: string, notice?: string): string {
  const nav = NAV.map(
    ([p, label]) =>
      `<a href="${pageUrl(p)}"${p === page ? ' aria-current="page"' : ''} data-nav="${p}">${esc(label)}</a>`,
  ).join('');
  const title = NAV.find(([p]) => p === page)?.[1] ?? '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="${esc(csrf)}">
<title>aivault · ${esc(title)}</title>
<link rel="stylesheet" href="${UI_PREFIX}/app.css"><script src="${UI_PREFIX}/app.js" defer></script>
</head><body data-page="${page}">
<header><span class="brand">aivault</span><nav>${nav}</nav>${postForm(`${UI_PREFIX}/logout`, csrf, {}, 'Log out', 'quiet')}</header>
<main><h1>${esc(title)}</h1>${notice ? `<p class="notice" role="status">${esc(notice)}</p>` : ''}
${body}</main></body></html>`;
}

export interface CapabilityRow {
  readonly id: string;
  readonly provider: string;
  readonly credentials: readonly string[];
  readonly hosts: readonly string[];
  readonly methods: readonly string[];
}

export interface WaitingProvider {
  readonly provider: string;
  readonly capabilities: readonly string[];
  /** The exact CLI command(s) that make them ready. */
  readonly fix: readonly string[];
}

export function capabilitiesPage(
  ready: readonly CapabilityRow[],
  waiting: readonly WaitingProvider[],
): string {
  const readyRows = ready
    .map(
      (c) =>
        `<tr data-capability="${esc(c.id)}"><td><span class="badge ok">ready</span></td><td class="mono">${esc(c.id)}</td><td>${esc(c.credentials.join(', '))}</td><td class="mono">${esc(c.methods.join(','))}</td><td class="mono">${esc(c.hosts.join(', '))}</td></tr>`,
    )
    .join('');
  const waitingRows = waiting
    .map(
      (w) =>
        `<tr data-provider="${esc(w.provider)}"><td><span class="badge warn">needs a credential</span></td><td><strong>${esc(w.provider)}</strong> <span class="dim">(${w.capabilities.length})</span><details><summary>capabilities</summary><span class="mono">${esc(w.capabilities.join(', '))}</span></details></td><td>${w.fix.map((f) => `<code class="cmd">${esc(f)}</code>`).join('<br>')}</td></tr>`,
    )
    .join('');
  return `<section><h2>Ready (${ready.length})</h2>
${ready.length ? `<table id="ready"><thead><tr><th></th><th>capability</th><th>credential</th><th>methods</th><th>hosts</th></tr></thead><tbody>${readyRows}</tbody></table>` : '<p class="dim" id="ready">None yet: store a provider secret (see below).</p>'}
</section><section><h2>Needs a credential (${waiting.length} providers)</h2>
<table id="waiting"><thead><tr><th></th><th>provider</th><th>fix</th></tr></thead><tbody>${waitingRows}</tbody></table></section>`;
}

export function callsPage(): string {
  return `<p class="dim">Calls through every listener, as they happen (labels only: never a header, a body or a secret). <span id="live-state" class="badge">connecting…</span></p>
<table id="live"><thead><tr><th>time</th><th>transport</th><th>capability</th><th>method</th><th>path</th><th>status</th><th>duration</th></tr></thead><tbody></tbody></table>`;
}

export interface AuditRow {
  readonly tsMs: number;
  readonly kind: string;
  readonly capability?: string;
  readonly method?: string;
  readonly path?: string;
  readonly status?: number;
  readonly errorCode?: string;
  readonly durationMs?: number;
  readonly note?: string;
}

export interface AuditFilter {
  readonly capability: string;
  readonly outcome: 'any' | 'ok' | 'error';
  readonly since: string;
}

export const SINCE_CHOICES: Readonly<Record<string, number>> = {
  '15m': 15 * 60_000,
  '1h': 60 * 60_000,
  '24h': 24 * 60 * 60_000,
  '7d': 7 * 24 * 60 * 60_000,
  all: Number.POSITIVE_INFINITY,
};

export function auditPage(
  rows: readonly AuditRow[],
  filter: AuditFilter,
  chain: { ok: boolean; text: string } | undefined,
): string {
  const opt = (v: string, label: string, cur: string): string =>
    `<option value="${esc(v)}"${v === cur ? ' selected' : ''}>${esc(label)}</option>`;
  const form = `<form method="get" action="${UI_PREFIX}/audit" class="filters">
<label>capability <input name="capability" value="${esc(filter.capability)}" placeholder="any"></label>
<label>outcome <select name="outcome">${opt('any', 'any', filter.outcome)}${opt('ok', 'ok', filter.outcome)}${opt('error', 'refused / failed', filter.outcome)}</select></label>
<label>since <select name="since">${Object.keys(SINCE_CHOICES)
    .map((k) => opt(k, k, filter.since))
    .join('')}</select></label>
<button type="submit">Filter</button> <button type="submit" name="verify" value="1" class="quiet">Check the chain</button></form>`;
  const chainLine = chain
    ? `<p id="chain" class="badge ${chain.ok ? 'ok' : 'bad'}">${esc(chain.text)}</p>`
    : '';
  const body = rows
    .map(
      (r) =>
        `<tr class="${r.errorCode ? 'err' : ''}"><td class="mono">${esc(time(r.tsMs))}</td><td>${esc(r.kind)}</td><td class="mono">${esc(r.capability ?? '')}</td><td>${esc(r.method ?? '')}</td><td class="mono">${esc(r.path ?? '')}</td><td>${esc(r.status ?? '')}</td><td>${esc(r.errorCode ?? '')}</td><td>${r.durationMs !== undefined ? `${esc(r.durationMs)} ms` : ''}</td></tr>`,
    )
    .join('');
  return `${form}${chainLine}<table id="audit"><thead><tr><th>time (UTC)</th><th>kind</th><th>capability</th><th>method</th><th>path</th><th>status</th><th>error</th><th>duration</th></tr></thead><tbody>${body || '<tr><td colspan="8" class="dim">no events</td></tr>'}</tbody></table>`;
}

export interface LimitRow {
  readonly capability: string;
  readonly limit: number;
  readonly used: number;
}

export function limitsPage(rows: readonly LimitRow[]): string {
  if (rows.length === 0) {
    return '<p class="dim">No capability has a rate limit. Set one with <code class="cmd">aivault capability policy set --capability ID --rate-limit-per-minute N</code>.</p>';
  }
  return `<table id="limits"><thead><tr><th>capability</th><th>used (last 60 s)</th><th>limit / min</th><th></th></tr></thead><tbody>${rows
    .map(
      (r) =>
        `<tr><td class="mono">${esc(r.capability)}</td><td>${esc(r.used)}</td><td>${esc(r.limit)}</td><td><meter min="0" max="${esc(r.limit)}" low="${esc(Math.floor(r.limit * 0.7))}" high="${esc(Math.floor(r.limit * 0.9))}" optimum="0" value="${esc(Math.min(r.used, r.limit))}"></meter></td></tr>`,
    )
    .join('')}</tbody></table>`;
}

export interface TokenRow {
  readonly id: string;
  readonly kind: 'proxy' | 'operator';
  readonly label?: string;
  readonly capabilities?: readonly string[];
  readonly createdAtMs: number;
  readonly expiresAtMs?: number;
}

export function tokensPage(rows: readonly TokenRow[], csrf: string): string {
  if (rows.length === 0) return '<p class="dim" id="tokens">No live tokens.</p>';
  return `<table id="tokens"><thead><tr><th>id</th><th>kind</th><th>label</th><th>capabilities</th><th>created</th><th>expires</th><th></th></tr></thead><tbody>${rows
    .map(
      (t) =>
        `<tr data-token="${esc(t.id)}"><td class="mono">${esc(t.id)}</td><td>${esc(t.kind)}</td><td>${esc(t.label ?? '')}</td><td class="mono">${esc((t.capabilities ?? []).join(', '))}</td><td class="mono">${esc(time(t.createdAtMs))}</td><td class="mono">${t.expiresAtMs !== undefined ? esc(time(t.expiresAtMs)) : 'never'}</td><td>${postForm(`${UI_PREFIX}/tokens/revoke`, csrf, { id: t.id }, 'Revoke', 'danger')}</td></tr>`,
    )
    .join('')}</tbody></table>`;
}

export interface ApprovalRow {
  readonly id: string;
  readonly capability: string;
  readonly method: string;
  readonly host: string;
  readonly path: string;
  /** -1: a local file read when the call goes out. */
  readonly bodyBytes: number;
  readonly transport: string;
  /** `token <id>` or `socket #<connection>`: who a `once` approval would be remembered for. */
  readonly caller: string;
  readonly createdAt: number;
  readonly expiresAt: number;
}

export function approvalsPage(rows: readonly ApprovalRow[] | undefined, csrf: string): string {
  if (rows === undefined) return '<p class="dim">Approvals are not enabled in this aivaultd.</p>';
  if (rows.length === 0) {
    return '<p class="dim" id="approvals">No call is waiting for approval. <span class="dim">(This page refreshes when one arrives.)</span></p>';
  }
  return `<table id="approvals"><thead><tr><th>waiting since</th><th>capability</th><th>request</th><th>body</th><th>via</th><th>caller</th><th>times out</th><th></th></tr></thead><tbody>${rows
    .map(
      (a) =>
        `<tr data-approval="${esc(a.id)}"><td class="mono">${esc(time(a.createdAt))}</td><td class="mono">${esc(a.capability)}</td><td class="mono">${esc(a.method)} https://${esc(a.host)}${esc(a.path)}</td><td class="body">${a.bodyBytes < 0 ? 'file' : `${esc(a.bodyBytes)} B`}</td><td>${esc(a.transport)}</td><td class="mono">${esc(a.caller)}</td><td class="mono">${esc(time(a.expiresAt))}</td><td>${postForm(`${UI_PREFIX}/approvals/decide`, csrf, { id: a.id, decision: 'approved' }, 'Approve', 'ok')} ${postForm(`${UI_PREFIX}/approvals/decide`, csrf, { id: a.id, decision: 'denied' }, 'Deny', 'danger')}</td></tr>`,
    )
    .join('')}</tbody></table>`;
}

/** The page a browser gets for a used, expired or unknown login code. */
export function loginFailedPage(): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>aivault · login</title><link rel="stylesheet" href="${UI_PREFIX}/app.css"></head><body><main><h1>This login link is not valid</h1><p>A dashboard login link works once, for two minutes. Run <code class="cmd">aivault dashboard</code> for a new one.</p></main></body></html>`;
}

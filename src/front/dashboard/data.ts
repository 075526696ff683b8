/**
 * What the dashboard pages show, gathered on aivaultd's main thread from metadata only: the catalog
 * snapshot (capabilities, credentials, policies), tokens.json (ids and labels, never hashes), the audit
 * day files, the shared rate-limit table, the pending-approval store. Nothing here decrypts anything.
 */
import type { BrokerSnapshot, Capability } from '../../core/broker/types.js';
import { registry } from '../../core/registry/index.js';
import type { AuditEvent } from '../../stores/audit/audit-log.js';
import type { RateLimiter } from '../../core/threads/rate-limit.js';
import type { TokenInfo } from '../../stores/tokens/tokens.js';
import type { PendingApproval } from '../approvals.js';
import { callerLabel } from '../../core/broker/approval-caller.js';
import type {
  ApprovalRow,
  AuditFilter,
  AuditRow,
  CapabilityRow,
  LimitRow,
  TokenRow,
  WaitingProvider,
} from './html.js';
import { SINCE_CHOICES } from './html.js';

/** Ready capabilities (a usable credential) and, per provider, what is missing with the command to fix it. */
export function capabilityView(snap: BrokerSnapshot): { ready: CapabilityRow[]; waiting: WaitingProvider[] } {
  const byProvider = new Map<string, string[]>();
  for (const c of snap.credentials.values())
    byProvider.set(c.provider, [...(byProvider.get(c.provider) ?? []), c.id]);
  const credsOf = (c: Capability): string[] =>
    c.credentialId !== undefined
      ? snap.credentials.has(c.credentialId)
        ? [c.credentialId]
        : []
      : (byProvider.get(c.provider) ?? []);
  const ready: CapabilityRow[] = [];
  const waiting = new Map<string, { caps: string[]; credentialIds: Set<string> }>();
  for (const c of [...snap.capabilities.values()].sort((a, b) => a.id.localeCompare(b.id))) {
    const creds = credsOf(c);
    if (creds.length > 0) {
      ready.push({
        id: c.id,
        provider: c.provider,
        credentials: creds,
        hosts: c.allow.hosts,
        methods: c.allow.methods,
      });
      continue;
    }
    const w = waiting.get(c.provider) ?? { caps: [], credentialIds: new Set<string>() };
    w.caps.push(c.id);
    if (c.credentialId !== undefined) w.credentialIds.add(c.credentialId);
    waiting.set(c.provider, w);
  }
  return {
    ready,
    waiting: [...waiting.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([provider, w]) => ({
        provider,
        capabilities: w.caps,
        fix: fixFor(provider, [...w.credentialIds]),
      })),
  };
}

/** The exact CLI command(s) that give `provider` a credential. */
function fixFor(provider: string, credentialIds: readonly string[]): string[] {
  const claims = Object.keys(registry.getProvider(provider)?.vaultSecrets ?? {});
  if (claims.length > 0) {
    // Storing a registry provider's secret under its canonical name creates its credential too.
    return claims.map((name) => `aivault secrets create --name ${name} --value-stdin`);
  }
  const id = credentialIds[0] ?? provider;
  return [
    `aivault credential create ${id} --provider ${provider} --secret-ref vault:secret:<id> --host <host>`,
  ];
}

export function parseAuditFilter(query: URLSearchParams): AuditFilter {
  const outcome = query.get('outcome');
  const since = query.get('since') ?? '24h';
  return {
    capability: (query.get('capability') ?? '').trim().slice(0, 200),
    outcome: outcome === 'ok' || outcome === 'error' ? outcome : 'any',
    since: Object.hasOwn(SINCE_CHOICES, since) ? since : '24h',
  };
}

/** Audit events (newest first) that pass the filter; at most `max`. */
export function filterAudit(
  events: readonly AuditEvent[],
  f: AuditFilter,
  now: number,
  max = 200,
): AuditRow[] {
  const from = now - (SINCE_CHOICES[f.since] ?? Number.POSITIVE_INFINITY);
  const out: AuditRow[] = [];
  for (const e of events) {
    if (out.length >= max) break;
    if (e.tsMs < from) continue;
    if (
      f.capability !== '' &&
      e.capability !== f.capability &&
      !e.capability?.startsWith(`${f.capability}/`)
    ) {
      continue;
    }
    const failed = e.errorCode !== undefined || (e.status !== undefined && e.status >= 400);
    if (f.outcome === 'ok' && failed) continue;
    if (f.outcome === 'error' && !failed) continue;
    out.push({
      tsMs: e.tsMs,
      kind: e.kind,
      ...(e.capability !== undefined ? { capability: e.capability } : {}),
      ...(e.method !== undefined ? { method: e.method } : {}),
      ...(e.path !== undefined ? { path: e.path } : {}),
      ...(e.status !== undefined ? { status: e.status } : {}),
      ...(e.errorCode !== undefined ? { errorCode: e.errorCode } : {}),
      ...(e.durationMs !== undefined ? { durationMs: e.durationMs } : {}),
    });
  }
  return out;
}

/** Per-minute usage of every capability that has a rate-limit policy. */
export function limitView(snap: BrokerSnapshot, limiter: RateLimiter): LimitRow[] {
  const rows: LimitRow[] = [];
  for (const [id, p] of snap.policies) {
    if (p.rateLimitPerMinute === undefined || !(p.rateLimitPerMinute > 0)) continue;
    rows.push({ capability: id, limit: p.rateLimitPerMinute, used: limiter.used(id) });
  }
  return rows.sort((a, b) => a.capability.localeCompare(b.capability));
}

export function tokenView(tokens: readonly TokenInfo[]): TokenRow[] {
  return tokens.map((t) =>
    t.kind === 'proxy'
      ? {
          id: t.id,
          kind: 'proxy',
          ...(t.label !== undefined ? { label: t.label } : {}),
          capabilities: t.capabilities,
          createdAtMs: t.createdAtMs,
          expiresAtMs: t.expiresAtMs,
        }
      : {
          id: t.id,
          kind: 'operator',
          ...(t.name !== undefined ? { label: t.name } : {}),
          createdAtMs: t.createdAtMs,
          ...(t.expiresAtMs !== undefined ? { expiresAtMs: t.expiresAtMs } : {}),
        },
  );
}

export function approvalView(pending: readonly PendingApproval[]): ApprovalRow[] {
  return pending.map((a) => ({
    id: a.id,
    capability: a.capability,
    method: a.method,
    host: a.host,
    path: a.path,
    bodyBytes: a.bodyBytes,
    transport: a.transport,
    caller: callerLabel(a.callerTokenId, a.caller),
    createdAt: a.createdAt,
    expiresAt: a.expiresAt,
  }));
}

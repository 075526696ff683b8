/**
 * Operator actions on pending approvals (issue 16), on the daemon's main thread where the ApprovalStore
 * lives: the `approvals.*` CLI commands (after the crypto worker checked the operator's proof, see
 * operator-executor.ts), the operator HTTP routes (http-admin.ts), and the audit line of every decision.
 *
 * What is shown of a pending call is what will be sent — capability, method, host, path, body size —
 * plus the caller's token id (an id, never the token). Never a header value, a body or a secret.
 */
import { AivaultError } from '../core/errors.js';
import type { AuditInput } from '../stores/audit/audit-log.js';
import { escapeControl, painter, renderTable } from '../cli/output.js';
import type { CommandOptValue } from '../core/protocol/frames.js';
import type { ApprovalDecision, ApprovalStore, PendingApproval } from './approvals.js';
import { callerLabel } from '../core/broker/approval-caller.js';
import type { CommandOutput } from '../crypto-worker/operator-executor.js';

/** A pending call as listings show it (CLI `-v`, `GET /aivault/approvals`). */
export interface ApprovalView {
  readonly id: string;
  readonly status: 'pending';
  readonly capability: string;
  readonly method: string;
  readonly host: string;
  readonly path: string;
  /** -1 when the body is read from a local file when the call goes out. */
  readonly bodyBytes: number;
  readonly transport: string;
  readonly mode: 'once' | 'always';
  /** The id of the caller's proxy token; '' for a unix-socket caller. */
  readonly callerTokenId: string;
  /** Who a `once` approval is remembered for: `token:<id>`, `socket:<connection>` (approval-caller.ts). */
  readonly caller: string;
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
}

export function approvalView(p: PendingApproval): ApprovalView {
  return {
    id: p.id,
    status: 'pending',
    capability: p.capability,
    method: p.method,
    host: p.host,
    path: p.path,
    bodyBytes: p.bodyBytes,
    transport: p.transport,
    mode: p.mode,
    callerTokenId: p.callerTokenId,
    caller: p.caller,
    createdAtMs: p.createdAt,
    expiresAtMs: p.expiresAt,
  };
}

/** Longest a `list --wait` (the CLI's `--watch`) is held before it answers with an unchanged list. */
export const LIST_WAIT_MS = 25_000;

/**
 * The pending list. With `waitFor` (the ids the asker already has), the answer is held until the list
 * differs from that set or LIST_WAIT_MS pass: `aivault approvals --watch` long-polls instead of polling.
 */
export function listApprovals(
  store: ApprovalStore,
  waitFor?: readonly string[],
  waitMs = LIST_WAIT_MS,
): Promise<ApprovalView[]> {
  const now = (): ApprovalView[] => store.list().map(approvalView);
  if (waitFor === undefined) return Promise.resolve(now());
  const known = new Set(waitFor);
  const differs = (): boolean => {
    const ids = store.list().map((p) => p.id);
    return ids.length !== known.size || ids.some((id) => !known.has(id));
  };
  if (differs()) return Promise.resolve(now());
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      unsubscribe();
      resolve(now());
    };
    const timer = setTimeout(done, waitMs);
    timer.unref?.();
    const unsubscribe = store.subscribe(() => {
      if (differs()) done();
    });
  });
}

/** Approve or deny one pending call; `not_found` when it is no longer pending. */
export function decideApproval(
  store: ApprovalStore,
  id: string,
  outcome: 'approved' | 'denied',
  by: string,
): { id: string; outcome: 'approved' | 'denied' } {
  if (!store.decide(id, outcome, by)) {
    throw new AivaultError(
      'not_found',
      `no pending call ${escapeControl(id.slice(0, 80))} (already decided, timed out, or unknown; see aivault approvals)`,
    );
  }
  return { id, outcome };
}

/** The audit line of one decision (approved, denied, timeout): what was asked and who decided. */
export function approvalAuditEvent(d: ApprovalDecision): AuditInput {
  const a = d.approval;
  return {
    kind: 'approval',
    actor: d.by,
    note: `${d.outcome} ${d.id}`,
    ...(d.outcome === 'approved' ? {} : { errorCode: 'approval_denied' }),
    ...(a
      ? {
          capability: a.capability,
          method: a.method,
          host: a.host,
          path: a.path,
          durationMs: Math.max(0, d.at - a.createdAt),
        }
      : {}),
  };
}

/** Write an audit line for every decision of `store`; returns the unsubscribe function. */
export function auditApprovals(store: ApprovalStore, audit: (event: AuditInput) => void): () => void {
  return store.subscribe((event) => {
    if (event.type === 'decided') audit(approvalAuditEvent(event.decision));
  });
}

function formatBytes(n: number): string {
  return n < 0 ? 'file' : `${n} B`;
}

/** Human lines for pending calls (the CLI's table). Control characters in caller input are escaped. */
export function renderApprovals(rows: readonly ApprovalView[], color: boolean, nowMs = Date.now()): string {
  const p = painter(color);
  if (rows.length === 0) return p.dim('No calls are waiting for approval.');
  return renderTable(
    ['id', 'capability', 'method', 'host', 'path', 'body', 'caller', 'expires in'],
    rows.map((r) => [
      p.bold(r.id),
      escapeControl(r.capability),
      r.method,
      escapeControl(r.host),
      escapeControl(r.path),
      formatBytes(r.bodyBytes),
      r.callerTokenId ? escapeControl(r.callerTokenId) : p.dim(callerLabel('', r.caller)),
      `${Math.max(0, Math.ceil((r.expiresAtMs - nowMs) / 1000))} s`,
    ]),
    p,
  );
}

/**
 * Run an `approvals.*` command frame (the crypto worker already checked the operator's proof).
 * `approvals.list` takes `wait` (comma-separated ids already seen) for the long poll.
 */
export async function runApprovalCommand(
  store: ApprovalStore,
  key: string,
  args: readonly string[],
  opts: Readonly<Record<string, CommandOptValue>>,
  color: boolean,
  by: string,
): Promise<CommandOutput> {
  const p = painter(color);
  if (key === 'approvals.list') {
    const wait = typeof opts.wait === 'string' ? opts.wait.split(',').filter(Boolean) : undefined;
    const rows = await listApprovals(store, wait);
    return { json: JSON.stringify(rows), human: renderApprovals(rows, color), notice: null, exitCode: 0 };
  }
  if (key === 'approvals.approve' || key === 'approvals.deny') {
    const id = args[0] ?? '';
    const outcome = key === 'approvals.approve' ? 'approved' : 'denied';
    const r = decideApproval(store, id, outcome, by);
    return {
      json: JSON.stringify(r),
      human:
        outcome === 'approved'
          ? `${p.green('Approved')} ${p.bold(r.id)}`
          : `${p.yellow('Denied')} ${p.bold(r.id)}`,
      notice: null,
      exitCode: 0,
    };
  }
  throw new AivaultError('invalid_request', `aivaultd does not run "${key.slice(0, 60)}"`);
}

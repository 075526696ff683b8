/**
 * The main thread's approval operations (src/front/approval-ops.ts) over a real ApprovalStore: the
 * listing view, the long poll behind `aivault approvals --watch`, decisions, and the audit line of each.
 */
import { describe, expect, it } from 'vitest';
import { ApprovalStore } from '../../../src/front/approvals.js';
import { approvalRequest } from './approval-fixture.js';
import {
  approvalAuditEvent,
  auditApprovals,
  decideApproval,
  listApprovals,
  renderApprovals,
} from '../../../src/front/approval-ops.js';
import type { AuditInput } from '../../../src/stores/audit/audit-log.js';
import { parseArgs } from '../../../src/front/main.js';

const req = approvalRequest();

describe('approval operations', () => {
  it('lists what will be sent, and decides; a second decision is not_found', async () => {
    const store = new ApprovalStore({ timeoutMs: 60_000 });
    const outcome = store.request(req);
    const [view] = await listApprovals(store);
    expect(view).toMatchObject({
      status: 'pending',
      capability: 'acme/pay',
      bodyBytes: 42,
      path: '/v1/charges',
    });
    expect(renderApprovals([view!], false)).toContain(view!.id);
    expect(decideApproval(store, view!.id, 'approved', 'cli:owner')).toEqual({
      id: view!.id,
      outcome: 'approved',
    });
    expect(await outcome).toBe('approved');
    expect(() => decideApproval(store, view!.id, 'denied', 'cli:owner')).toThrow(/no pending call/);
  });

  it('the long poll answers when the pending set changes, at once when it already differs', async () => {
    const store = new ApprovalStore({ timeoutMs: 60_000 });
    expect(await listApprovals(store, ['gone'])).toEqual([]); // differs already
    const waiting = listApprovals(store, []);
    const call = store.request(req);
    const rows = await waiting;
    expect(rows).toHaveLength(1);
    const still = listApprovals(store, [rows[0]!.id]);
    store.decide(rows[0]!.id, 'denied', 'test');
    expect(await still).toEqual([]);
    expect(await call).toBe('denied');
  });

  it('every decision is one audit line, with no body and no token', async () => {
    const store = new ApprovalStore({ timeoutMs: 20 });
    const lines: AuditInput[] = [];
    const stop = auditApprovals(store, (e) => lines.push(e));
    const approved = store.request(req);
    store.decide(store.list()[0]!.id, 'approved', 'http:op_1');
    await approved;
    expect(await store.request({ ...req, mode: 'always' })).toBe('timeout');
    stop();
    expect(lines.map((l) => [l.kind, l.actor, l.note?.split(' ')[0], l.errorCode])).toEqual([
      ['approval', 'http:op_1', 'approved', undefined],
      ['approval', 'timeout', 'timeout', 'approval_denied'],
    ]);
    expect(lines[0]).toMatchObject({ capability: 'acme/pay', method: 'POST', host: 'api.acme.test' });
    expect(approvalAuditEvent({ id: 'x', outcome: 'denied', by: 'caller-gone', at: 1 })).toMatchObject({
      kind: 'approval',
      errorCode: 'approval_denied',
    });
  });

  it('aivaultd --approval-timeout takes seconds; nonsense is a usage error', () => {
    expect(parseArgs(['--approval-timeout', '2.5']).options.approvalTimeoutMs).toBe(2500);
    expect(parseArgs([]).options.approvalTimeoutMs).toBeUndefined();
    for (const bad of ['0', '-1', 'abc', '86401']) {
      expect(() => parseArgs(['--approval-timeout', bad])).toThrow(
        expect.objectContaining({ code: 'usage' }),
      );
    }
  });
});

/**
 * What a `once` approval is remembered for (src/front/approvals.ts) and what makes it stale
 * (src/front/approval-staleness.ts): per capability + caller and only for the scope approved; forgotten
 * when its caller's token is revoked or its socket connection closes, when its capability's policy is set
 * or the capability removed, and never remembered for a caller that cannot be told apart.
 */
import { describe, expect, it } from 'vitest';
import { ApprovalStore, type ApprovalRequest } from '../../../src/front/approvals.js';
import { forgetAfterCommand } from '../../../src/front/approval-staleness.js';
import { approvalRequest } from './approval-fixture.js';
import {
  approvalCaller,
  callerLabel,
  socketCaller,
  tokenCaller,
} from '../../../src/core/broker/approval-caller.js';

const req = approvalRequest({ caller: tokenCaller('tok_a'), mode: 'once' });

/** Approve `r` through the store (as an operator would); resolves when it is remembered. */
async function approveOnce(store: ApprovalStore, r: ApprovalRequest): Promise<void> {
  const outcome = store.request(r);
  const [pending] = store.list();
  if (!pending) throw new Error('the call did not wait');
  store.decide(pending.id, 'approved', 'test');
  expect(await outcome).toBe('approved');
}

/** True when `r` is admitted from memory; false when it waits (its pending entry is then denied). */
async function remembered(store: ApprovalStore, r: ApprovalRequest): Promise<boolean> {
  const outcome = store.request(r);
  const waiting = store.list();
  for (const p of waiting) store.decide(p.id, 'denied', 'test');
  await outcome;
  return waiting.length === 0;
}

describe('once approvals: what they are remembered for', () => {
  it('the same capability + caller + scope is admitted from memory; anything else waits', async () => {
    const store = new ApprovalStore();
    await approveOnce(store, req);
    expect(await remembered(store, { ...req, path: '/v1/refunds' })).toBe(true);
    expect(await remembered(store, { ...req, caller: tokenCaller('tok_b') })).toBe(false);
    expect(await remembered(store, { ...req, capability: 'acme/other' })).toBe(false);
    // The capability's policy, credential or host changed (any path, a hand edit too): asks again…
    expect(await remembered(store, { ...req, scope: 'scope-2' })).toBe(false);
    // …and the old approval does not come back when the scope does.
    expect(await remembered(store, req)).toBe(false);
    // `always` never uses the memory.
    await approveOnce(store, req);
    expect(await remembered(store, { ...req, mode: 'always' })).toBe(false);
  });

  it('a caller that cannot be told apart is never remembered', async () => {
    const store = new ApprovalStore();
    await approveOnce(store, { ...req, callerTokenId: '', caller: '' });
    expect(await remembered(store, { ...req, callerTokenId: '', caller: '' })).toBe(false);
  });

  it('expires after rememberMs', async () => {
    let now = 1_000;
    const store = new ApprovalStore({ rememberMs: 100, now: () => now });
    await approveOnce(store, req);
    now += 99;
    expect(await remembered(store, req)).toBe(true);
    now += 2;
    expect(await remembered(store, req)).toBe(false);
  });

  it('forgetCaller and forgetCapability drop exactly their own approvals', async () => {
    const store = new ApprovalStore();
    const other = { ...req, callerTokenId: '', caller: socketCaller('3') };
    const elsewhere = { ...req, capability: 'acme/other' };
    for (const r of [req, other, elsewhere]) await approveOnce(store, r);
    store.forgetCaller(tokenCaller('tok_a'));
    expect(await remembered(store, req)).toBe(false);
    expect(await remembered(store, elsewhere)).toBe(false); // same token, other capability: gone too
    expect(await remembered(store, other)).toBe(true);
    await approveOnce(store, req);
    store.forgetCapability('acme/pay');
    expect(await remembered(store, req)).toBe(false);
    expect(await remembered(store, other)).toBe(false);
  });
});

describe('operator commands that make once approvals stale', () => {
  const staleAfter = async (
    key: string,
    args: string[],
    opts: Record<string, string> = {},
  ): Promise<{ token: boolean; other: boolean; socket: boolean }> => {
    const store = new ApprovalStore();
    const mine = req;
    const other = { ...req, capability: 'acme/other', caller: tokenCaller('tok_b'), callerTokenId: 'tok_b' };
    const socket = { ...req, callerTokenId: '', caller: socketCaller('1') };
    for (const r of [mine, other, socket]) await approveOnce(store, r);
    forgetAfterCommand(store, key, args, opts);
    return {
      token: !(await remembered(store, mine)),
      other: !(await remembered(store, other)),
      socket: !(await remembered(store, socket)),
    };
  };

  it('token revoke forgets that token only', async () => {
    expect(await staleAfter('token.revoke', ['tok_a'])).toEqual({ token: true, other: false, socket: false });
  });

  it('policy set (argument or --capability) and capability delete forget that capability only', async () => {
    const onlyPay = { token: true, other: false, socket: true };
    expect(await staleAfter('capability.policySet', ['acme/pay'])).toEqual(onlyPay);
    expect(await staleAfter('capability.policySet', [], { capability: 'acme/pay' })).toEqual(onlyPay);
    expect(await staleAfter('capability.remove', ['acme/pay'])).toEqual(onlyPay);
  });

  it('credential delete forgets everything; reads and other writes forget nothing', async () => {
    expect(await staleAfter('credential.remove', ['acme'])).toEqual({
      token: true,
      other: true,
      socket: true,
    });
    for (const key of ['capability.list', 'secrets.create', 'token.mint']) {
      expect(await staleAfter(key, ['acme/pay'])).toEqual({ token: false, other: false, socket: false });
    }
  });
});

describe('approval callers', () => {
  it('a token is its id; a socket call its connection; a token without an id is nobody', () => {
    expect(approvalCaller({ token: { id: 'tok_1', capabilities: [] } })).toBe('token:tok_1');
    // A token call is the token's even if a connection id were present.
    expect(approvalCaller({ token: { id: 'tok_1', capabilities: [] }, socketConnection: '2' })).toBe(
      'token:tok_1',
    );
    expect(approvalCaller({ socketConnection: '2' })).toBe('socket:2');
    expect(approvalCaller({ token: { capabilities: [] } })).toBe('');
    expect(approvalCaller({})).toBe('');
    expect(callerLabel('tok_1', 'token:tok_1')).toBe('token tok_1');
    expect(callerLabel('', 'socket:2')).toBe('socket #2');
  });
});

/**
 * Operator approvals (issue 16) on a real in-process aivaultd (uWS, request worker, crypto worker) with
 * the compiled CLI as the operator: a call to a capability with `--approval` waits until the operator
 * approves it (then reaches the upstream once), a denied or timed-out call never reaches the upstream
 * and fails with approval_denied, `once` is remembered per caller (a proxy token, one unix-socket
 * connection) and forgotten when that token is revoked or the capability's policy is set, a caller's own proxy token
 * cannot decide, waiting calls do not hold a connection's call slots, and listings show no secret —
 * on every transport: socket invoke, /aivault/proxy, /v/ passthrough, the HTTPS proxy, the WebSocket relay.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished, vi } from 'vitest';
import WebSocket from 'ws';
import { ProxyAgent, request as undiciRequest } from 'undici';
import { AuditLog } from '../../../src/stores/audit/audit-log.js';
import { vaultPaths } from '../../../src/stores/vault/index.js';
import { connect } from '../../../src/core/protocol/client.js';
import { isAivaultError } from '../../../src/core/errors.js';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mintProxyToken } from '../../../src/stores/tokens/tokens.js';
import { CLI, parseJson, registerSecret, runCli } from '../../support/run-cli.js';
import { ECHO_SECRET, OPENAI_SECRET, startHttpFixture, type HttpFixture } from './http-fixture.js';

interface Pending {
  id: string;
  status: string;
  capability: string;
  method: string;
  host: string;
  path: string;
  bodyBytes: number;
  callerTokenId: string;
  caller: string;
  transport: string;
}

// Short enough for the timeout test, long enough for a CLI start on a busy machine.
const TIMEOUT_MS = 8_000;

let fx: HttpFixture;
let op: string;
const cli = (args: readonly string[]) => runCli(args, { env: fx.env, timeoutMs: 60_000 });

beforeAll(async () => {
  registerSecret(ECHO_SECRET);
  registerSecret(OPENAI_SECRET);
  fx = await startHttpFixture({ approvalTimeoutMs: TIMEOUT_MS, httpsProxy: '127.0.0.1:0' });
  op = await fx.operator();
  // Through the CLI (an operator write executed by the daemon): `always` on one, `once` on the other.
  for (const [cap, mode] of [
    ['echo/special', 'always'],
    ['echo/api', 'once'],
  ] as const) {
    const r = await cli(['capability', 'policy', 'set', cap, '--approval', mode]);
    expect(r.code, r.stderr).toBe(0);
  }
}, 120_000);
afterAll(() => fx?.close());

const pending = async (): Promise<Pending[]> => {
  const r = await fx.api<Pending[]>(op, 'GET', '/aivault/approvals');
  expect(r.status).toBe(200);
  return r.json;
};

/**
 * Wait until a call to `path` is pending; returns it. Long-polls (`?wait=` the ids already seen), so each
 * answer is a change, not a poll: one request and one audit line per change.
 */
async function waitPending(path: string): Promise<Pending> {
  const deadline = Date.now() + 20_000;
  let known = await pending();
  for (;;) {
    const p = known.find((x) => x.path === path);
    if (p) return p;
    if (Date.now() > deadline) throw new Error(`no pending call for ${path}`);
    const r = await fx.api<Pending[]>(
      op,
      'GET',
      `/aivault/approvals?wait=${known.map((x) => x.id).join(',')}`,
    );
    expect(r.status).toBe(200);
    known = r.json;
  }
}

const hits = (path: string): number => fx.upstream.requests.filter((r) => r.path === path).length;

/**
 * Start a call to `path` and tell whether it went through on a remembered `once` approval ('admitted',
 * the upstream saw it) or waited for the operator ('waited': it is denied here, and never sent).
 */
async function onceOutcome(path: string, call: () => Promise<unknown>): Promise<'admitted' | 'waited'> {
  let settled = false;
  const running = call().finally(() => (settled = true));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (settled) {
      await running;
      expect(hits(path)).toBe(1);
      return 'admitted';
    }
    const p = (await pending()).find((x) => x.path === path);
    if (p) {
      expect((await fx.api(op, 'POST', `/aivault/approvals/${p.id}/deny`)).status).toBe(200);
      await running.catch(() => undefined);
      expect(hits(path)).toBe(0);
      return 'waited';
    }
    if (Date.now() > deadline) throw new Error(`${path}: neither admitted nor waiting`);
    await new Promise((r) => setImmediate(r));
  }
}

/** A proxy call to echo/api (`once`) that must succeed, or fail with approval_denied. */
const onceCall = (token: string, path: string) => async (): Promise<void> => {
  const res = await proxy(token, path, 'echo/api');
  const text = await res.text();
  if (res.status !== 200) expect(JSON.parse(text)).toMatchObject({ error: 'approval_denied' });
};

/** Approve the first call of `token` to echo/api so that its `once` approval is remembered. */
async function approveOnce(token: string, path: string): Promise<void> {
  const call = proxy(token, path, 'echo/api');
  const p = await waitPending(path);
  expect((await fx.api(op, 'POST', `/aivault/approvals/${p.id}/approve`)).status).toBe(200);
  expect((await call).status).toBe(200);
}

const proxy = (token: string, path: string, capability = 'echo/special'): Promise<Response> =>
  fetch(`${fx.baseUrl}/aivault/proxy`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ capability, request: { method: 'GET', path } }),
  });

describe('operator approvals', () => {
  it('policy set --approval shows in describe and list; off removes it', async () => {
    const d = parseJson<{ approval?: string }>(await cli(['-v', 'capability', 'describe', 'echo/special']));
    expect(d.approval).toBe('always');
    const l = parseJson<{ ready: { id: string; approval?: string }[] }>(
      await cli(['-v', 'capability', 'list']),
    );
    expect(l.ready.find((c) => c.id === 'echo/api')?.approval).toBe('once');
    const bad = await cli(['capability', 'policy', 'set', 'echo/special', '--approval', 'sometimes']);
    expect(bad.code).toBe(2);
    const on = await cli(['-v', 'capability', 'policy', 'set', 'openai/models', '--approval', 'always']);
    expect(parseJson<{ approval?: string }>(on).approval).toBe('always');
    const off = await cli(['-v', 'capability', 'policy', 'set', 'openai/models', '--approval', 'off']);
    expect(off.code, off.stderr).toBe(0);
    expect(parseJson<{ approval?: string }>(off).approval).toBeUndefined();
    const desc = parseJson<{ approval?: string }>(
      await cli(['-v', 'capability', 'describe', 'openai/models']),
    );
    expect(desc.approval).toBeUndefined();
  });

  it('GET /aivault/approvals?wait= long-polls: answered when the pending set changes, not before', async () => {
    const token = await fx.mint({ capabilities: ['echo/*'] });
    const path = '/special/long-poll';
    const longPoll = (ids: readonly string[]) => {
      const state = { answered: false };
      const answer = fx
        .api<Pending[]>(op, 'GET', `/aivault/approvals?wait=${ids.join(',')}`)
        .finally(() => (state.answered = true));
      return Object.assign(answer, { state });
    };
    const before = (await pending()).map((x) => x.id);
    const first = longPoll(before);
    await new Promise((r) => setTimeout(r, 300));
    expect(first.state.answered).toBe(false);
    const call = proxy(token, path);
    const seen = await first;
    expect(seen.status).toBe(200);
    const p = seen.json.find((x) => x.path === path) as Pending;
    expect(p).toMatchObject({ status: 'pending', capability: 'echo/special' });

    // Held again with the new set; the decision is the change that answers it.
    const second = longPoll(seen.json.map((x) => x.id));
    await new Promise((r) => setTimeout(r, 300));
    expect(second.state.answered).toBe(false);
    expect((await fx.api(op, 'POST', `/aivault/approvals/${p.id}/deny`)).status).toBe(200);
    expect((await second).json.some((x) => x.id === p.id)).toBe(false);
    expect((await call).status).toBe(403);
    expect(hits(path)).toBe(0);

    // A set that already differs is answered at once; a malformed one is refused.
    const stale = await fx.api<Pending[]>(op, 'GET', '/aivault/approvals?wait=apr_gone');
    expect(stale.status).toBe(200);
    for (const q of ['wait=a%0Ab', `wait=${'x'.repeat(65)}`, `wait=${Array(1001).fill('a').join(',')}`]) {
      const bad = await fx.api<{ error: string }>(op, 'GET', `/aivault/approvals?${q}`);
      expect(bad.status, q).toBe(400);
      expect(bad.json.error).toBe('invalid_request');
    }
    // The long poll is operator-only like the list.
    expect((await fx.api(token, 'GET', '/aivault/approvals?wait=')).status).toBe(401);
  });

  it('a long poll whose operator token is revoked while it waits gets 401, not the pending calls', async () => {
    const token = await fx.mint({ capabilities: ['echo/*'] });
    const { createOperatorToken } = await import('../../../src/stores/tokens/tokens.js');
    const other = await createOperatorToken(fx.config.vaultDir, { name: 'revoked-mid-poll' });
    const before = (await pending()).map((x) => x.id);
    const poll = fx.api<{ error: string }>(other.token, 'GET', `/aivault/approvals?wait=${before.join(',')}`);
    await new Promise((r) => setTimeout(r, 300));
    // Revoked through the daemon (the operator API), then the pending set changes: the poll's answer.
    expect((await fx.api(op, 'DELETE', `/aivault/tokens/${other.info.id}`)).status).toBe(200);
    const path = '/special/revoked-poll';
    const call = proxy(token, path);
    const answer = await poll;
    expect(answer.status).toBe(401);
    expect(JSON.stringify(answer.json)).not.toContain(path);
    const p = (await pending()).find((x) => x.path === path) as Pending;
    expect((await fx.api(op, 'POST', `/aivault/approvals/${p.id}/deny`)).status).toBe(200);
    expect((await call).status).toBe(403);
  });

  it('a call waits, is approved from the CLI and completes; the upstream sees it once', async () => {
    const token = await fx.mint({ capabilities: ['echo/*'] });
    registerSecret(token);
    const path = '/special/approved';
    const call = proxy(token, path);
    const p = await waitPending(path);
    expect(hits(path)).toBe(0);

    const listed = parseJson<Pending[]>(await cli(['-v', 'approvals']));
    const mine = listed.find((x) => x.id === p.id);
    expect(mine).toMatchObject({
      id: p.id,
      status: 'pending',
      capability: 'echo/special',
      method: 'GET',
      path,
      host: 'upstream.test',
      bodyBytes: 0,
      transport: 'proxy',
    });
    const human = await cli(['approvals']);
    expect(human.stdout).toContain(p.id);
    for (const text of [JSON.stringify(listed), human.stdout]) {
      expect(text).not.toContain(ECHO_SECRET);
      expect(text).not.toContain(token);
    }

    const ok = await cli(['approve', p.id]);
    expect(ok.code, ok.stderr).toBe(0);
    const res = await call;
    expect(res.status).toBe(200);
    await res.text();
    expect(hits(path)).toBe(1);
    expect(await pending()).toEqual([]);
    // Deciding it again: no longer pending.
    const again = await cli(['approve', p.id]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toMatch(/not_found|no pending call/);
  }, 90_000);

  it('a denied socket call never reaches the upstream and fails with approval_denied', async () => {
    const path = '/special/denied';
    const invoke = cli(['-v', 'invoke', 'echo/special', '--method', 'GET', '--path', path]);
    const p = await waitPending(path);
    expect(p.transport).toBe('socket');
    expect(p.callerTokenId).toBe('');
    expect(p.caller).toMatch(/^socket:\d+$/);
    const d = await cli(['deny', p.id]);
    expect(d.code, d.stderr).toBe(0);
    const r = await invoke;
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/approval_denied/);
    expect(hits(path)).toBe(0);
  }, 90_000);

  it('a call nobody approves times out with approval_denied and never reaches the upstream', async () => {
    const token = await fx.mint({ capabilities: ['echo/special'] });
    const path = '/special/timeout';
    const started = Date.now();
    const call = proxy(token, path);
    await waitPending(path);
    const res = await call;
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toBe('approval_denied');
    expect(Date.now() - started).toBeGreaterThanOrEqual(TIMEOUT_MS - 500);
    expect(hits(path)).toBe(0);
    expect((await pending()).find((x) => x.path === path)).toBeUndefined();
  }, 60_000);

  it('`once` is remembered for the same caller token, not for another token', async () => {
    const a = await fx.mint({ capabilities: ['echo/api'] });
    const b = await fx.mint({ capabilities: ['echo/api'] });
    const first = proxy(a, '/once/a1', 'echo/api');
    const p = await waitPending('/once/a1');
    const ok = await fx.api(op, 'POST', `/aivault/approvals/${p.id}/approve`);
    expect(ok.status).toBe(200);
    expect((await first).status).toBe(200);

    // Same token: no wait (nobody approves; a wait would end in a 403 after the timeout).
    const t0 = Date.now();
    const second = await proxy(a, '/once/a2', 'echo/api');
    expect(second.status).toBe(200);
    expect(Date.now() - t0).toBeLessThan(TIMEOUT_MS);
    expect(hits('/once/a2')).toBe(1);

    // Another token waits for its own approval; denied here.
    const other = proxy(b, '/once/b1', 'echo/api');
    const pb = await waitPending('/once/b1');
    expect(pb.callerTokenId).not.toBe(p.callerTokenId);
    const no = await fx.api(op, 'POST', `/aivault/approvals/${pb.id}/deny`);
    expect(no.status).toBe(200);
    const res = await other;
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toBe('approval_denied');
    expect(hits('/once/b1')).toBe(0);
  }, 60_000);

  it('`once` for a unix-socket caller is remembered for its connection only, and ends with it', async () => {
    const first = await connect({ socketPath: fx.config.socketPath });
    const second = await connect({ socketPath: fx.config.socketPath });
    onTestFinished(() => second.close());
    const on = (client: typeof first, path: string) => () =>
      client.invoke({ capability: 'echo/api', request: { method: 'GET', path } }).catch((err: unknown) => {
        expect(isAivaultError(err) && err.code).toBe('approval_denied');
      });
    const call = on(first, '/sock/1')();
    const p = await waitPending('/sock/1');
    expect(p.caller).toMatch(/^socket:\d+$/);
    expect((await fx.api(op, 'POST', `/aivault/approvals/${p.id}/approve`)).status).toBe(200);
    await call;
    expect(await onceOutcome('/sock/2', on(first, '/sock/2'))).toBe('admitted');
    // Another connection (another agent of the same user, or another user on a shared socket) asks.
    expect(await onceOutcome('/sock/3', on(second, '/sock/3'))).toBe('waited');
    // The approved connection closes: a new one (the same client reconnecting) asks again.
    first.close();
    const again = await connect({ socketPath: fx.config.socketPath });
    onTestFinished(() => again.close());
    expect(await onceOutcome('/sock/4', on(again, '/sock/4'))).toBe('waited');
  }, 90_000);

  it('`once` is forgotten when its token is revoked (CLI or operator API), even if the token comes back', async () => {
    const tokensJson = join(fx.config.vaultDir, 'tokens.json');
    for (const how of ['cli', 'http'] as const) {
      const { token, info } = await mintProxyToken(fx.config.vaultDir, { capabilities: ['echo/api'] });
      // A backup of tokens.json that still holds the token (restored below, as an operator might).
      const backup = await readFile(tokensJson);
      await approveOnce(token, `/revoke/${how}/1`);
      expect(await onceOutcome(`/revoke/${how}/2`, onceCall(token, `/revoke/${how}/2`))).toBe('admitted');
      if (how === 'cli') {
        const r = await cli(['token', 'revoke', info.id]);
        expect(r.code, r.stderr).toBe(0);
      } else {
        expect((await fx.api(op, 'DELETE', `/aivault/tokens/${info.id}`)).status).toBe(200);
      }
      const revoked = await proxy(token, `/revoke/${how}/3`, 'echo/api');
      expect(revoked.status).toBe(401);
      // The same token again (the backup restored): it is a caller the operator has not approved.
      await writeFile(tokensJson, backup);
      fx.daemon.pool.generation.bump();
      expect(await onceOutcome(`/revoke/${how}/4`, onceCall(token, `/revoke/${how}/4`))).toBe('waited');
    }
  }, 120_000);

  it('`once` is forgotten when the crypto worker dies (its keys are gone: as a lock), even though it comes back', async () => {
    const token = await fx.mint({ capabilities: ['echo/api'] });
    await approveOnce(token, '/crypto/1');
    expect(await onceOutcome('/crypto/2', onceCall(token, '/crypto/2'))).toBe('admitted');
    const pool = fx.daemon.pool as unknown as { crypto: { terminate(): Promise<number> } };
    const crypto = pool.crypto;
    await crypto.terminate();
    // A fresh crypto worker takes over (it unlocks this file-key vault by itself).
    await vi.waitFor(() => expect(pool.crypto).not.toBe(crypto), { timeout: 20_000, interval: 20 });
    expect(await onceOutcome('/crypto/3', onceCall(token, '/crypto/3'))).toBe('waited');
  }, 60_000);

  it('`once` is forgotten on any policy set of its capability (CLI or operator API), a mode change included', async () => {
    const token = await fx.mint({ capabilities: ['echo/api'] });
    const remembered = async (tag: string): Promise<void> => {
      await approveOnce(token, `/policy/${tag}/approved`);
      expect(await onceOutcome(`/policy/${tag}/kept`, onceCall(token, `/policy/${tag}/kept`))).toBe(
        'admitted',
      );
    };
    const asksAgain = async (tag: string): Promise<void> => {
      expect(await onceOutcome(`/policy/${tag}/after`, onceCall(token, `/policy/${tag}/after`))).toBe(
        'waited',
      );
    };
    // A policy set that changes nothing still ends it (the operator looked at the policy again).
    await remembered('same');
    const same = await cli(['capability', 'policy', 'set', 'echo/api', '--approval', 'once']);
    expect(same.code, same.stderr).toBe(0);
    await asksAgain('same');
    // once → always → once: back where it was, and still asked again.
    await remembered('mode');
    for (const mode of ['always', 'once']) {
      const r = await cli(['capability', 'policy', 'set', 'echo/api', '--approval', mode]);
      expect(r.code, r.stderr).toBe(0);
    }
    await asksAgain('mode');
    // The operator API's PATCH with a policy field, changing nothing either.
    await remembered('http');
    expect((await fx.api(op, 'PATCH', '/aivault/capabilities/echo%2Fapi', { approval: 'once' })).status).toBe(
      200,
    );
    await asksAgain('http');
    // Another capability's policy set leaves it alone.
    await remembered('other');
    const other = await cli(['capability', 'policy', 'set', 'echo/special', '--approval', 'always']);
    expect(other.code, other.stderr).toBe(0);
    expect(await onceOutcome('/policy/other/after', onceCall(token, '/policy/other/after'))).toBe('admitted');
  }, 180_000);

  it('the caller cannot approve its own call: its proxy token gets operator_auth_required', async () => {
    const token = await fx.mint({ capabilities: ['echo/special'] });
    const path = '/special/self';
    const call = proxy(token, path);
    const p = await waitPending(path);
    for (const route of [`/aivault/approvals/${p.id}/approve`, '/aivault/approvals']) {
      const res = await fx.api<{ error: string }>(token, route.endsWith('approvals') ? 'GET' : 'POST', route);
      expect(res.status).toBe(401);
      expect(res.json.error).toBe('operator_auth_required');
    }
    // Still pending, untouched; the operator denies it.
    expect((await pending()).some((x) => x.id === p.id)).toBe(true);
    expect((await fx.api(op, 'POST', `/aivault/approvals/${p.id}/deny`)).status).toBe(200);
    expect((await call).status).toBe(403);
    expect(hits(path)).toBe(0);
  }, 60_000);

  it('waiting calls do not hold the connection: another call on it completes meanwhile', async () => {
    const client = await connect({ socketPath: fx.config.socketPath });
    try {
      // More waiting non-stream calls than a connection runs at once (4)…
      const waiting = [0, 1, 2, 3, 4].map((i) =>
        client
          .invoke({ capability: 'echo/special', request: { method: 'GET', path: `/special/hold${i}` } })
          .then(
            () => 'ok',
            (err: unknown) => (isAivaultError(err) ? err.code : 'other'),
          ),
      );
      for (let i = 0; i < 5; i++) await waitPending(`/special/hold${i}`);
      // …and a call that needs no approval still runs on the same connection.
      const res = await client.invoke({
        capability: 'openai/models',
        request: { method: 'GET', path: '/v1/models' },
      });
      expect(res.status).toBe(200);
      for (const p of await pending()) await fx.api(op, 'POST', `/aivault/approvals/${p.id}/deny`);
      expect(await Promise.all(waiting)).toEqual(Array(5).fill('approval_denied'));
    } finally {
      client.close();
    }
  }, 60_000);

  it('the caller going away removes its pending entry', async () => {
    const path = '/special/gone';
    const ac = new AbortController();
    const token = await fx.mint({ capabilities: ['echo/special'] });
    const call = fetch(`${fx.baseUrl}/aivault/proxy`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ capability: 'echo/special', request: { method: 'GET', path } }),
      signal: ac.signal,
    }).catch(() => undefined);
    const p = await waitPending(path);
    ac.abort();
    await call;
    const deadline = Date.now() + 10_000;
    while ((await pending()).some((x) => x.id === p.id)) {
      if (Date.now() > deadline) throw new Error('pending entry not removed');
      await new Promise((r) => setImmediate(r));
    }
    expect(hits(path)).toBe(0);
  }, 60_000);

  it('/v/ passthrough waits too: denied, never sent', async () => {
    const token = await fx.mint({ capabilities: ['echo/*'] });
    const path = '/special/passthrough';
    const call = fetch(`${fx.baseUrl}/v/echo${path}`, { headers: { authorization: `Bearer ${token}` } });
    const p = await waitPending(path);
    expect(p.transport).toBe('passthrough');
    expect((await fx.api(op, 'POST', `/aivault/approvals/${p.id}/deny`)).status).toBe(200);
    const res = await call;
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toBe('approval_denied');
    expect(hits(path)).toBe(0);
  }, 60_000);

  it('the HTTPS proxy waits too: approved, then sent once', async () => {
    const token = await fx.mint({ capabilities: ['echo/special'] });
    const proxyInfo = fx.daemon.httpsProxy;
    if (!proxyInfo) throw new Error('https proxy did not start');
    const agent = new ProxyAgent({
      uri: `http://127.0.0.1:${proxyInfo.port}`,
      token: `Basic ${Buffer.from(`agent:${token}`).toString('base64')}`,
      // The leaf comes from the vault's CA; TLS trust of it is tested in test/e2e/https-proxy.
      requestTls: { rejectUnauthorized: false },
    });
    onTestFinished(() => agent.close());
    const path = '/special/through-proxy';
    const call = undiciRequest(`https://upstream.test${path}`, { dispatcher: agent });
    const p = await waitPending(path);
    expect(p.transport).toBe('https-proxy');
    expect(p.callerTokenId).not.toBe('');
    expect(hits(path)).toBe(0);
    expect((await fx.api(op, 'POST', `/aivault/approvals/${p.id}/approve`)).status).toBe(200);
    const res = await call;
    expect(res.statusCode).toBe(200);
    await res.body.text();
    expect(hits(path)).toBe(1);
  }, 60_000);

  it('the WebSocket relay waits for approval before it connects upstream', async () => {
    const token = await fx.mint({ capabilities: ['echo/special'] });
    // Upstream upgrades seen (the mock records plain requests only).
    const upgrades: string[] = [];
    const onUpgrade = (req: { url?: string }): void => {
      upgrades.push(new URL(req.url ?? '/', 'https://u.invalid').pathname);
    };
    fx.upstream.server.on('upgrade', onUpgrade);
    onTestFinished(() => void fx.upstream.server.off('upgrade', onUpgrade));
    const wsHits = (path: string): number => upgrades.filter((u) => u === path).length;
    const open = (): Promise<WebSocket> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${fx.daemon.http?.port}/aivault/ws`, {
          headers: { authorization: `Bearer ${token}` },
        });
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      });
    // Approved: the relay opens and echoes.
    const ws = await open();
    onTestFinished(() => ws.close());
    const first = new Promise<string>((r) => ws.once('message', (d: Buffer) => r(d.toString('utf8'))));
    ws.send(JSON.stringify({ capability: 'echo/special', path: '/special/ws-echo' }));
    const p = await waitPending('/special/ws-echo');
    expect(p.transport).toBe('ws');
    expect(wsHits('/special/ws-echo')).toBe(0);
    expect((await fx.api(op, 'POST', `/aivault/approvals/${p.id}/approve`)).status).toBe(200);
    expect((JSON.parse(await first) as { path: string }).path).toBe('/special/ws-echo');
    expect(wsHits('/special/ws-echo')).toBe(1);
    // Denied: closed with the policy close code and approval_denied, nothing sent upstream.
    const ws2 = await open();
    const closed = new Promise<{ code: number; text: string }>((resolve) => {
      let text = '';
      ws2.on('message', (d: Buffer) => (text += d.toString('utf8')));
      ws2.once('close', (code) => resolve({ code, text }));
    });
    ws2.send(JSON.stringify({ capability: 'echo/special', path: '/special/ws-denied/ws-echo' }));
    const p2 = await waitPending('/special/ws-denied/ws-echo');
    expect((await fx.api(op, 'POST', `/aivault/approvals/${p2.id}/deny`)).status).toBe(200);
    const c = await closed;
    expect(c.code).toBe(1008);
    expect(c.text).toContain('approval_denied');
    expect(wsHits('/special/ws-denied/ws-echo')).toBe(0);
  }, 60_000);

  it('approvals --watch streams each waiting call when not on a terminal', async () => {
    const child = spawn(process.execPath, [CLI, 'approvals', '--watch'], {
      env: fx.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    onTestFinished(() => void child.kill('SIGKILL'));
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    let err = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    /** Resolves once stdout satisfies `cond` (checked on every chunk). */
    const until = (cond: () => boolean): Promise<void> =>
      new Promise((resolve, reject) => {
        if (cond()) return resolve();
        const timer = setTimeout(() => reject(new Error(`watch printed: ${out} / ${err}`)), 30_000);
        const check = (): void => {
          if (!cond()) return;
          clearTimeout(timer);
          child.stdout.off('data', check);
          resolve();
        };
        child.stdout.on('data', check);
      });
    await until(() => out.includes('Watching'));
    const token = await fx.mint({ capabilities: ['echo/special'] });
    const path = '/special/watched';
    const call = proxy(token, path);
    const p = await waitPending(path);
    await until(() => out.includes(p.id));
    expect(out).toMatch(new RegExp(`pending ${p.id}\\s+echo/special\\s+GET upstream\\.test/special/watched`));
    expect(out).not.toContain(token);
    expect(out).not.toContain(ECHO_SECRET);
    expect((await fx.api(op, 'POST', `/aivault/approvals/${p.id}/deny`)).status).toBe(200);
    expect((await call).status).toBe(403);
    expect(child.exitCode).toBeNull(); // still watching
  }, 60_000);

  it('approvals --watch on a terminal asks, and "y" approves the call', async () => {
    // A real pseudo-terminal through util-linux `script`: the CLI sees a TTY on stdin and stdout.
    const child = spawn('script', ['-qfec', `${process.execPath} ${CLI} approvals --watch`, '/dev/null'], {
      env: fx.env,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    onTestFinished(() => void child.kill('SIGKILL'));
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    const until = (cond: () => boolean): Promise<void> =>
      new Promise((resolve, reject) => {
        if (cond()) return resolve();
        const timer = setTimeout(() => reject(new Error(`watch printed: ${out}`)), 30_000);
        const check = (): void => {
          if (!cond()) return;
          clearTimeout(timer);
          child.stdout.off('data', check);
          resolve();
        };
        child.stdout.on('data', check);
      });
    await until(() => out.includes('Watching'));
    const token = await fx.mint({ capabilities: ['echo/special'] });
    const path = '/special/tty';
    const call = proxy(token, path);
    const p = await waitPending(path);
    await until(() => out.includes(`Approve ${p.id}?`));
    expect(hits(path)).toBe(0);
    child.stdin.write('y\r');
    const res = await call;
    expect(res.status).toBe(200);
    await res.text();
    expect(hits(path)).toBe(1);
    await until(() => out.includes('approved'));
    expect(out).not.toContain(token);
  }, 60_000);

  it('every decision is audited (approved, denied, timeout), with no secret', async () => {
    // Every event of the file, not the newest 1,000: the polling in the tests above writes ~800 lines on a
    // quiet machine and more on a slow one, which pushed the early timeout decision out of a 1,000 window.
    const events = await new AuditLog(fx.config, vaultPaths(fx.config)).list({ limit: 1_000_000 });
    const approvals = events.filter((e) => e.kind === 'approval');
    const notes = approvals.map((e) => e.note?.split(' ')[0]);
    expect(notes).toContain('approved');
    expect(notes).toContain('denied');
    expect(notes).toContain('timeout');
    expect(approvals.find((e) => e.path === '/special/approved')?.actor).toBe('cli:owner');
    expect(approvals.find((e) => e.path === '/special/timeout')?.errorCode).toBe('approval_denied');
    const text = JSON.stringify(approvals);
    expect(text).not.toContain(ECHO_SECRET);
  });
});

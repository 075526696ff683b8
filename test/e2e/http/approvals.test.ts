/**
 * Operator approvals (issue 16) on a real in-process aivaultd (uWS, request worker, crypto worker) with
 * the compiled CLI as the operator: a call to a capability with `--approval` waits until the operator
 * approves it (then reaches the upstream once), a denied or timed-out call never reaches the upstream
 * and fails with approval_denied, `once` is remembered per caller token only, a caller's own proxy token
 * cannot decide, waiting calls do not hold a connection's call slots, and listings show no secret —
 * on every transport: socket invoke, /aivault/proxy, /v/ passthrough, the HTTPS proxy, the WebSocket relay.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { ProxyAgent, request as undiciRequest } from 'undici';
import { AuditLog } from '../../../src/stores/audit/audit-log.js';
import { vaultPaths } from '../../../src/stores/vault/index.js';
import { connect } from '../../../src/core/protocol/client.js';
import { isAivaultError } from '../../../src/core/errors.js';
import { spawn } from 'node:child_process';
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

/** Wait (on the condition, no fixed sleep) until a call to `path` is pending; returns it. */
async function waitPending(path: string): Promise<Pending> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const p = (await pending()).find((x) => x.path === path);
    if (p) return p;
    if (Date.now() > deadline) throw new Error(`no pending call for ${path}`);
    await new Promise((r) => setImmediate(r));
  }
}

const hits = (path: string): number => fx.upstream.requests.filter((r) => r.path === path).length;

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
    const events = await new AuditLog(fx.config, vaultPaths(fx.config)).list({ limit: 1000 });
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

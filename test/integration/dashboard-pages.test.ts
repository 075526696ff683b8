/**
 * The dashboard's pages and POSTs over plain HTTP against a real in-process aivaultd (the browser test
 * covers login, live calls and revoke in chromium): the login code comes over the operator channel
 * (unix socket), audit filters and the chain check, rate-limit usage, approvals approved and denied on
 * the page (a waiting call completes or is refused), sessions ended by a vault lock, and the call-event
 * bus seeing every transport.
 */
import { request as httpRequest } from 'node:http';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '../../src/front/main.js';
import { connect, type DaemonClient } from '../../src/core/protocol/client.js';
import { subscribeCalls, type CallEvent } from '../../src/front/call-events.js';
import { catalogPaths, setPolicy } from '../../src/stores/catalog/index.js';
import { registry } from '../../src/core/registry/index.js';
import { mintProxyToken } from '../../src/stores/tokens/tokens.js';
import { prepareVault, type PreparedVault } from '../e2e/http/http-fixture.js';
import { createDevHome } from '../support/dev-vault.js';
import { loadConfig } from '../../src/core/config/env.js';
import { Vault } from '../../src/stores/vault/index.js';

let pv: PreparedVault;
let daemon: Daemon;
let client: DaemonClient;
let base: string;
let host: string;

interface Session {
  cookie: string;
  csrf: string;
}

async function login(): Promise<Session> {
  const data = await client.dashboardLogin();
  const res = await fetch(`${base}/aivault/ui/login?code=${String(data.code)}`, { redirect: 'manual' });
  expect(res.status).toBe(303);
  expect(res.headers.get('location')).toBe('/aivault/ui/');
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
  const page = await (await fetch(`${base}/aivault/ui/`, { headers: { cookie } })).text();
  const csrf = /<meta name="csrf-token" content="([^"]+)">/.exec(page)?.[1] ?? '';
  expect(csrf).not.toBe('');
  return { cookie, csrf };
}

const get = async (s: Session, path: string): Promise<{ status: number; html: string }> => {
  const res = await fetch(`${base}${path}`, { headers: { cookie: s.cookie } });
  return { status: res.status, html: await res.text() };
};

const post = (s: Session, path: string, form: Record<string, string>, origin = base): Promise<Response> =>
  fetch(`${base}${path}`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: s.cookie, origin, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form).toString(),
  });

beforeAll(async () => {
  pv = await prepareVault();
  await setPolicy(catalogPaths(pv.config.vaultDir), registry, {
    capabilityId: 'echo/special',
    rateLimitPerMinute: 10,
  });
  daemon = await startDaemon(pv.config, { workers: 1, http: '127.0.0.1:0', approvalTimeoutMs: 20_000 });
  if (!daemon.http) throw new Error('no HTTP listener');
  host = `127.0.0.1:${daemon.http.port}`;
  base = `http://${host}`;
  client = await connect({ socketPath: daemon.socketPath });
}, 60_000);

afterAll(async () => {
  client?.close();
  await daemon?.stop();
  pv?.vault.close();
  await pv?.upstream.close();
});

describe('dashboard pages', () => {
  it('answers only loopback Host names (DNS rebinding) and only with a session', async () => {
    const s = await login();
    // fetch cannot set Host: a raw request, as a rebound DNS name would arrive.
    const rebound = await new Promise<{ status: number }>((resolve, reject) => {
      const r = httpRequest(`${base}/aivault/ui/`, {
        headers: { cookie: s.cookie, host: `evil.test:${daemon.http?.port}` },
      });
      r.on('response', (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0 });
      });
      r.on('error', reject);
      r.end();
    });
    expect(rebound.status).toBe(421);
    expect((await fetch(`${base}/aivault/ui/audit`)).status).toBe(401);
    expect((await fetch(`${base}/aivault/ui/app.js`)).headers.get('content-security-policy')).toContain(
      "default-src 'none'",
    );
  });

  it('audit: filters by capability and outcome, and checks the chain', async () => {
    const s = await login();
    const env = (path: string) => ({ capability: 'echo/special', request: { method: 'GET', path } });
    expect((await client.invoke(env('/special/ok'))).status).toBe(200);
    await expect(client.invoke(env('/elsewhere'))).rejects.toMatchObject({ code: 'policy_violation' });
    // The request worker appends audit lines asynchronously: wait until both are on the page.
    let page = '';
    for (let i = 0; i < 100; i++) {
      page = (await get(s, '/aivault/ui/audit?capability=echo%2Fspecial&outcome=any&since=15m')).html;
      if (page.includes('/special/ok') && page.includes('policy_violation')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(page).toContain('/special/ok');
    expect(page).toContain('policy_violation');
    const errors = (await get(s, '/aivault/ui/audit?capability=echo%2Fspecial&outcome=error&since=15m')).html;
    expect(errors).toContain('policy_violation');
    expect(errors).not.toContain('/special/ok');
    const oks = (await get(s, '/aivault/ui/audit?capability=echo%2Fspecial&outcome=ok&since=15m')).html;
    expect(oks).toContain('/special/ok');
    expect(oks).not.toContain('policy_violation');
    const other = (await get(s, '/aivault/ui/audit?capability=openai&outcome=any&since=15m')).html;
    expect(other).not.toContain('/special/ok');
    const chain = (await get(s, '/aivault/ui/audit?verify=1')).html;
    expect(chain).toMatch(/<p id="chain" class="badge ok">chain intact: \d+ events/);
  });

  it('rate limits: shows calls used in the window against the limit', async () => {
    const s = await login();
    const before = (await get(s, '/aivault/ui/limits')).html;
    const used = Number(/echo\/special<\/td><td>(\d+)<\/td><td>10<\/td>/.exec(before)?.[1]);
    expect(Number.isInteger(used)).toBe(true);
    for (let i = 0; i < 3; i++) {
      await client.invoke({ capability: 'echo/special', request: { method: 'GET', path: '/special/x' } });
    }
    const after = (await get(s, '/aivault/ui/limits')).html;
    expect(after).toContain(`echo/special</td><td>${used + 3}</td><td>10</td>`);
  });

  it('approvals: approve and deny on the page need the session, same origin and the CSRF token', async () => {
    const s = await login();
    const req = {
      capability: 'echo/api',
      method: 'POST',
      host: 'upstream.test',
      path: '/v1/things',
      bodyBytes: 12,
      callerTokenId: 'tok_1',
      caller: 'token:tok_1',
      scope: 's',
      transport: 'proxy',
      mode: 'always' as const,
    };
    const first = daemon.pool.approvals.request(req);
    const second = daemon.pool.approvals.request({ ...req, path: '/v1/other' });
    const page = (await get(s, '/aivault/ui/approvals')).html;
    const [a, b] = daemon.pool.approvals.list();
    if (!a || !b) throw new Error('nothing pending');
    expect(page).toContain(`data-approval="${a.id}"`);
    expect(page).toContain('POST https://upstream.test/v1/things');
    expect(page).toContain('<td class="mono">token tok_1</td>');

    // Refused: no CSRF token, another origin, no session.
    expect((await post(s, '/aivault/ui/approvals/decide', { id: a.id, decision: 'approved' })).status).toBe(
      403,
    );
    expect(
      (
        await post(
          s,
          '/aivault/ui/approvals/decide',
          { id: a.id, decision: 'approved', csrf: s.csrf },
          'http://localhost:1',
        )
      ).status,
    ).toBe(403);
    expect(
      (
        await post({ cookie: '', csrf: '' }, '/aivault/ui/approvals/decide', {
          id: a.id,
          decision: 'approved',
          csrf: s.csrf,
        })
      ).status,
    ).toBe(403);
    expect(daemon.pool.approvals.list()).toHaveLength(2);

    const ok = await post(s, '/aivault/ui/approvals/decide', {
      id: a.id,
      decision: 'approved',
      csrf: s.csrf,
    });
    expect(ok.status).toBe(303);
    await expect(first).resolves.toBe('approved');
    const no = await post(s, '/aivault/ui/approvals/decide', { id: b.id, decision: 'denied', csrf: s.csrf });
    expect(no.status).toBe(303);
    await expect(second).resolves.toBe('denied');
    // Deciding twice is a conflict, not a second decision.
    expect(
      (await post(s, '/aivault/ui/approvals/decide', { id: b.id, decision: 'approved', csrf: s.csrf }))
        .status,
    ).toBe(409);
  });

  it('logout ends the session', async () => {
    const s = await login();
    expect((await post(s, '/aivault/ui/logout', { csrf: s.csrf })).status).toBe(303);
    expect((await get(s, '/aivault/ui/')).status).toBe(401);
  });

  it('locking the vault ends every session, closes its live-calls socket and burns unused login codes', async () => {
    const s = await login();
    const unused = String((await client.dashboardLogin()).code);
    const live = new WebSocket(`ws://${host}/aivault/ui/live`, {
      headers: { cookie: s.cookie, origin: base },
    });
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      live.once('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') })),
    );
    await new Promise<void>((resolve, reject) => {
      live.once('open', () => resolve());
      live.once('error', reject);
    });
    expect((await get(s, '/aivault/ui/approvals')).status).toBe(200);

    await client.operator('lock');
    try {
      // The socket closes at once (no call event is needed to notice), with the session-ended code.
      const stillOpen = new Promise<string>((resolve) => setTimeout(() => resolve('still open'), 10_000));
      expect(await Promise.race([closed, stillOpen])).toEqual({ code: 1008, reason: 'session ended' });
      expect((await get(s, '/aivault/ui/approvals')).status).toBe(401);
      const revoke = await post(s, '/aivault/ui/tokens/revoke', { id: 'x', csrf: s.csrf });
      expect(revoke.status).toBe(403);
      expect(await revoke.text()).toContain('no session');
      const code = await fetch(`${base}/aivault/ui/login?code=${unused}`, { redirect: 'manual' });
      expect(code.status).toBe(403);
    } finally {
      await client.operator('unlock');
    }
    // After the unlock the operator logs in again with a new code.
    expect((await get(await login(), '/aivault/ui/approvals')).status).toBe(200);
  });
});

describe('call events', () => {
  it('one start and one end per call, for the socket, /aivault/proxy and /v/ transports, labels only', async () => {
    const seen: CallEvent[] = [];
    const off = subscribeCalls((e) => seen.push(e));
    try {
      const token = (await mintProxyToken(pv.config.vaultDir, { capabilities: ['echo/api', 'openai/*'] }))
        .token;
      await client.invoke({ capability: 'echo/api', request: { method: 'GET', path: '/a?secret=1' } });
      await (
        await fetch(`${base}/aivault/proxy`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ capability: 'echo/api', request: { method: 'GET', path: '/b' } }),
        })
      ).text();
      await (
        await fetch(`${base}/v/openai/v1/models`, { headers: { authorization: `Bearer ${token}` } })
      ).text();
      for (let i = 0; i < 100 && seen.filter((e) => e.type === 'end').length < 3; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const starts = seen.filter((e) => e.type === 'start');
      expect(starts.map((e) => [e.transport, e.capability, e.method, e.path])).toEqual([
        ['socket', 'echo/api', 'GET', '/a'],
        ['proxy', 'echo/api', 'GET', '/b'],
        ['passthrough', '/v/openai', 'GET', '/v1/models'],
      ]);
      const ends = seen.filter((e) => e.type === 'end');
      expect(ends.map((e) => [e.id, e.status])).toEqual(starts.map((e) => [e.id, 200]));
      expect(JSON.stringify(seen)).not.toContain(token);
      expect(JSON.stringify(seen)).not.toContain('secret=1');
    } finally {
      off();
    }
  });
});

describe('dashboard login on a passphrase vault (user mode)', () => {
  it('the owner socket must give the passphrase, as for a write', async () => {
    const dh = createDevHome({ prefix: 'aivault-dash-pass-' });
    const config = loadConfig(dh.env);
    const PASS = 'dashboard passphrase 4417';
    const vault = await Vault.init(config, { provider: 'passphrase', passphrase: PASS, dev: true });
    vault.close();
    const d = await startDaemon(config, { workers: 1, http: '127.0.0.1:0' });
    const c = await connect({ socketPath: d.socketPath });
    try {
      await c.operator('unlock', PASS);
      await expect(c.dashboardLogin()).rejects.toMatchObject({ code: 'operator_auth_required' });
      await expect(c.dashboardLogin('wrong passphrase')).rejects.toMatchObject({
        code: 'operator_auth_required',
      });
      const ok = await c.dashboardLogin(PASS);
      expect(ok.code).toMatch(/^[A-Za-z0-9_-]{43}$/);
      // Checking the passphrase changed nothing: the vault stays unlocked.
      expect(await c.operator('status')).toMatchObject({ locked: false });
    } finally {
      c.close();
      await d.stop();
      dh.remove();
    }
  }, 90_000);
});

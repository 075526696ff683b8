/**
 * The operator dashboard in a real browser (issue 16): playwright-core driving Debian's chromium
 * (/usr/bin/chromium, no browser download) against a real in-process aivaultd with its loopback HTTP
 * listener, and the compiled CLI for `aivault dashboard`, `secrets create` and `invoke`.
 * Shows: login with the one-time URL (and the URL no longer works), a capability becoming ready after
 * `aivault secrets create`, a live call appearing while a CLI invoke runs, a token revoked on the page
 * failing its next passthrough call, a waiting call approved on the approvals page (it completes) and
 * another denied there (never sent), `aivault lock` ending the session and its live socket, no request
 * off loopback, cross-site and CSRF-less POSTs refused.
 * Writes docs/dashboard.png (the README screenshot).
 */
import { existsSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startDaemon, type Daemon } from '../../../src/front/main.js';
import { listTokens, mintProxyToken } from '../../../src/stores/tokens/tokens.js';
import { isolatedEnv, registerSecret, runCli } from '../../support/run-cli.js';
import {
  ANTHROPIC_SECRET,
  ECHO_SECRET,
  OPENAI_SECRET,
  prepareVault,
  type PreparedVault,
} from '../http/http-fixture.js';

const CHROMIUM = '/usr/bin/chromium';
const COHERE_SECRET = registerSecret('co-dashboard-Hy8-never-on-a-page');

let pv: PreparedVault;
let daemon: Daemon;
let env: Record<string, string>;
let base: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let loginUrl: string;
/** Every URL the dashboard's browser context asked for. */
const requested: string[] = [];

async function dashboardUrl(): Promise<string> {
  const r = await runCli(['-v', 'dashboard'], { env });
  expect(r.code, r.stderr).toBe(0);
  const out = JSON.parse(r.stdout) as { url: string; expiresAt: string };
  expect(out.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/aivault\/ui\/login\?code=[A-Za-z0-9_-]{43}$/);
  return out.url;
}

/** Every page's text, checked for secret values (a page must never show one). */
async function assertNoSecretOnPage(p: Page): Promise<void> {
  const html = await p.content();
  for (const s of [ECHO_SECRET, OPENAI_SECRET, ANTHROPIC_SECRET, COHERE_SECRET])
    expect(html).not.toContain(s);
  expect(html).not.toMatch(/avp_[A-Za-z0-9_-]{10,}/);
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: scripts/setup-test-env.sh installs it`);
  for (const s of [ECHO_SECRET, OPENAI_SECRET, ANTHROPIC_SECRET]) registerSecret(s);
  pv = await prepareVault();
  daemon = await startDaemon(pv.config, { workers: 1, http: '127.0.0.1:0' });
  if (!daemon.http) throw new Error('no HTTP listener');
  base = `http://127.0.0.1:${daemon.http.port}`;
  env = isolatedEnv(pv.config.vaultDir, { ...pv.env, AIVAULTD_AUTOSTART: '0' });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  context = await browser.newContext({ viewport: { width: 1280, height: 760 } });
  // Anything that is not this loopback listener is recorded and never leaves the machine.
  await context.route('**/*', (route) => {
    const url = route.request().url();
    requested.push(url);
    return url.startsWith(`${base}/`) ? route.continue() : route.abort();
  });
  page = await context.newPage();
  page.on('websocket', (ws) => requested.push(ws.url()));
}, 90_000);

afterAll(async () => {
  await browser?.close();
  await daemon?.stop();
  pv?.vault.close();
  await pv?.upstream.close();
});

describe('aivault dashboard in chromium', { timeout: 60_000 }, () => {
  it('logs in with the one-time URL; the URL then leaves the address bar and works no more', async () => {
    loginUrl = await dashboardUrl();
    const res = await page.goto(loginUrl);
    expect(res?.status()).toBe(200);
    expect(page.url()).toBe(`${base}/aivault/ui/`);
    await expect(page.locator('h1').textContent()).resolves.toBe('Capabilities');
    const headers = (await res?.allHeaders()) ?? {};
    expect(headers['content-security-policy']).toContain("default-src 'none'");
    expect(headers['content-security-policy']).toContain("script-src 'self'");
    expect(headers['x-frame-options']).toBe('DENY');
    expect(headers['referrer-policy']).toBe('no-referrer');
    const [cookie] = await context.cookies(`${base}/aivault/ui/`);
    expect(cookie).toMatchObject({
      name: 'aivault_ui',
      httpOnly: true,
      sameSite: 'Strict',
      path: '/aivault/ui/',
    });
    expect(await page.evaluate('document.cookie')).toBe(''); // HttpOnly: no script can read it

    // A second use of the same URL (another browser profile) is refused.
    const other = await browser.newContext();
    const second = await (await other.newPage()).goto(loginUrl);
    expect(second?.status()).toBe(403);
    expect(await other.cookies(`${base}/aivault/ui/`)).toEqual([]);
    await other.close();
    // Without a session no page is served.
    const anon = await fetch(`${base}/aivault/ui/tokens`);
    expect(anon.status).toBe(401);
  });

  it('shows a capability becoming ready after `aivault secrets create`', async () => {
    await page.goto(`${base}/aivault/ui/`);
    expect(await page.locator('#ready tr[data-capability="openai/chat-completions"]').count()).toBe(1);
    const cohere = page.locator('#waiting tr[data-provider="cohere"]');
    await expect(cohere.textContent()).resolves.toContain(
      'aivault secrets create --name COHERE_API_KEY --value-stdin',
    );
    expect(await page.locator('#ready tr[data-capability="cohere/chat"]').count()).toBe(0);

    const r = await runCli(['secrets', 'create', '--name', 'COHERE_API_KEY', '--value-stdin'], {
      env,
      input: COHERE_SECRET,
    });
    expect(r.code, r.stderr).toBe(0);
    await page.reload();
    expect(await page.locator('#ready tr[data-capability="cohere/chat"]').count()).toBe(1);
    expect(await page.locator('#waiting tr[data-provider="cohere"]').count()).toBe(0);
    await assertNoSecretOnPage(page);
  });

  it('streams a live call while a CLI invoke runs', async () => {
    await page.goto(`${base}/aivault/ui/calls`);
    await page.locator('#live-state', { hasText: 'live' }).waitFor();
    // An SSE call that takes a while: its row appears before it ends, then shows status and duration.
    const invoke = runCli(['invoke', 'echo/api', '--path', '/sse?n=6&interval=250'], {
      env,
      timeoutMs: 30_000,
    });
    const row = page.locator('#live tbody tr', { hasText: 'echo/api' }).first();
    await row.waitFor();
    expect(await row.locator('td').nth(4).textContent()).toBe('/sse'); // the path, never its query
    await page
      .locator('#live tbody tr', { hasText: 'echo/api' })
      .locator('td.status', { hasText: '200' })
      .waitFor();
    const r = await invoke;
    expect(r.code, r.stderr).toBe(0);
    expect(await row.locator('td.duration').textContent()).toMatch(/^\d+ ms$/);

    // A couple more calls for the screenshot: a refused one shows its error code.
    const token = (
      await mintProxyToken(pv.config.vaultDir, { capabilities: ['openai/*'], label: 'screenshot' })
    ).token;
    await fetch(`${base}/v/openai/v1/models`, { headers: { authorization: `Bearer ${token}` } });
    await runCli(['invoke', 'echo/special', '--path', '/not-special'], { env });
    await page.locator('#live tbody tr', { hasText: 'policy' }).first().waitFor();
    await assertNoSecretOnPage(page);
    await page.screenshot({ path: 'docs/dashboard.png', clip: { x: 0, y: 0, width: 1280, height: 330 } });
  });

  it('revokes a token on the page; its next passthrough call fails', async () => {
    const { token, info } = await mintProxyToken(pv.config.vaultDir, {
      capabilities: ['openai/*'],
      label: 'agent-7',
    });
    const call = (): Promise<Response> =>
      fetch(`${base}/v/openai/v1/models`, { headers: { authorization: `Bearer ${token}` } });
    expect((await call()).status).toBe(200);

    await page.goto(`${base}/aivault/ui/tokens`);
    const row = page.locator(`#tokens tr[data-token="${info.id}"]`);
    await expect(row.textContent()).resolves.toContain('agent-7');
    await assertNoSecretOnPage(page);
    await row.getByRole('button', { name: 'Revoke' }).click();
    await page.waitForURL(/\/aivault\/ui\/tokens\?revoked=/);
    expect(await page.locator(`#tokens tr[data-token="${info.id}"]`).count()).toBe(0);

    const after = await call();
    expect(after.status).toBe(401);
    expect(((await after.json()) as { error: string }).error).toBe('token_invalid');
  });

  it('refuses a cross-site POST and a POST without the CSRF token', async () => {
    const { info } = await mintProxyToken(pv.config.vaultDir, {
      capabilities: ['openai/*'],
      label: 'target',
    });
    // Another site (localhost is not the same site as 127.0.0.1) auto-submits a revoke form.
    const evil: Server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(
        `<form id="f" method="post" action="${base}/aivault/ui/tokens/revoke"><input name="csrf" value="guess"><input name="id" value="${info.id}"></form><script>document.getElementById('f').submit()</script>`,
      );
    });
    await new Promise<void>((r) => evil.listen(0, '127.0.0.1', r));
    const evilPort = (evil.address() as AddressInfo).port;
    try {
      const attacker = await context.newPage();
      // This test's own page: let it through the loopback-only route for the attack.
      await attacker.route(`http://localhost:${evilPort}/**`, (route) => route.continue());
      const answered = attacker.waitForResponse((r) => r.url() === `${base}/aivault/ui/tokens/revoke`);
      await attacker.goto(`http://localhost:${evilPort}/`);
      expect((await answered).status()).toBe(403);
      await attacker.close();
    } finally {
      evil.close();
    }
    // Same origin, with the session cookie, but no CSRF token: refused too.
    await page.goto(`${base}/aivault/ui/tokens`);
    const status = await page.evaluate(async (id) => {
      const r = await fetch('/aivault/ui/tokens/revoke', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `id=${encodeURIComponent(id)}`,
      });
      return r.status;
    }, info.id);
    expect(status).toBe(403);
    expect((await listTokens(pv.config.vaultDir)).some((t) => t.id === info.id)).toBe(true);
    // The live-calls socket needs the session: a page of another origin cannot open it.
    const upgrade = (origin: string, cookie = ''): Promise<number> =>
      new Promise((resolve, reject) => {
        const req = httpRequest(`${base}/aivault/ui/live`, {
          headers: {
            connection: 'Upgrade',
            upgrade: 'websocket',
            'sec-websocket-version': '13',
            'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==',
            origin,
            ...(cookie ? { cookie } : {}),
          },
        });
        req.on('upgrade', (_res, socket) => {
          socket.destroy();
          resolve(101);
        });
        req.on('response', (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
    const [session] = await context.cookies(`${base}/aivault/ui/`);
    const cookie = `aivault_ui=${session?.value ?? ''}`;
    expect(await upgrade(base)).toBe(403); // no session
    expect(await upgrade(`http://localhost:${evilPort}`, cookie)).toBe(403); // another origin
    expect(await upgrade(base, cookie)).toBe(101);
  });

  it('approves a waiting call on the approvals page (it completes) and denies another (never sent)', async () => {
    const policy = await runCli(['capability', 'policy', 'set', 'echo/api', '--approval', 'always'], { env });
    expect(policy.code, policy.stderr).toBe(0);
    const { token, info } = await mintProxyToken(pv.config.vaultDir, {
      capabilities: ['echo/api'],
      label: 'payments-agent',
    });
    const BODY_MARKER = registerSecret('card-4242-body-never-on-a-page');
    const body = JSON.stringify({ amount: 1200, card: BODY_MARKER });
    const hits = (path: string): number => pv.upstream.requests.filter((r) => r.path === path).length;
    const call = (path: string): Promise<Response> =>
      fetch(`${base}/aivault/proxy`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: JSON.stringify({
          capability: 'echo/api',
          request: { method: 'POST', path, headers: { 'content-type': 'application/json' }, body },
        }),
      });
    const waiting = async (path: string): Promise<string> => {
      for (let i = 0; i < 400; i++) {
        const p = daemon.pool.approvals.list().find((x) => x.path === path);
        if (p) return p.id;
        await new Promise((r) => setTimeout(r, 25));
      }
      throw new Error(`no pending call for ${path}`);
    };

    // 1. A call waits; the page shows what will be sent — never the body, a header or a secret.
    const first = call('/charges/approve-me');
    const firstId = await waiting('/charges/approve-me');
    await page.goto(`${base}/aivault/ui/approvals`);
    const row = page.locator(`#approvals tr[data-approval="${firstId}"]`);
    const cells = await row.locator('td').allTextContents();
    expect(cells[1]).toBe('echo/api');
    expect(cells[2]).toBe('POST https://upstream.test/charges/approve-me');
    expect(cells[3]).toBe(`${Buffer.byteLength(body)} B`);
    expect(cells[4]).toBe('proxy');
    expect(cells[5]).toBe(`token ${info.id}`);
    await assertNoSecretOnPage(page);
    expect(await page.content()).not.toContain(BODY_MARKER);
    expect(await page.content()).not.toContain(token);
    expect(hits('/charges/approve-me')).toBe(0);

    // The buttons post the session's CSRF token; the same POST without it is refused, the call untouched.
    const csrf = await page.locator('meta[name="csrf-token"]').getAttribute('content');
    expect(csrf).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(
      await row.locator('form input[name="csrf"]').evaluateAll((els) => els.map((e) => e.value)),
    ).toEqual([csrf, csrf]);
    const forged = await page.evaluate(async (id) => {
      const r = await fetch('/aivault/ui/approvals/decide', {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `id=${encodeURIComponent(id)}&decision=approved`,
      });
      return r.status;
    }, firstId);
    expect(forged).toBe(403);
    expect(daemon.pool.approvals.get(firstId)).toBeDefined();

    // 2. The operator clicks Approve: the call goes out once and completes.
    const nextLive = page.waitForEvent('websocket', (ws) => ws.url().endsWith('/aivault/ui/live'));
    await row.getByRole('button', { name: 'Approve' }).click();
    await page.waitForURL(`${base}/aivault/ui/approvals`);
    const done = await first;
    expect(done.status).toBe(200);
    expect((JSON.parse(await done.text()) as { body?: string }).body).toBe(body); // the echo got it
    expect(hits('/charges/approve-me')).toBe(1);
    // The redirect lands on the URL the page already had, so waitForURL does not wait for the new page:
    // wait for the decided row to leave the page instead of counting rows of the old one (a flaky 1).
    await page
      .locator(`#approvals tr[data-approval="${firstId}"]`)
      .waitFor({ state: 'detached', timeout: 15_000 });

    // 3. The page is live: once its socket delivers events (a quick call proves it), a call that starts
    // waiting appears without a manual reload, and is denied from the page.
    const live = await nextLive;
    const delivered = live.waitForEvent('framereceived');
    const reader = (await mintProxyToken(pv.config.vaultDir, { capabilities: ['openai/*'] })).token;
    await (
      await fetch(`${base}/v/openai/v1/models`, { headers: { authorization: `Bearer ${reader}` } })
    ).text();
    await delivered;
    const second = call('/charges/deny-me');
    const secondId = await waiting('/charges/deny-me');
    const row2 = page.locator(`#approvals tr[data-approval="${secondId}"]`);
    await row2.waitFor({ timeout: 15_000 });
    await row2.getByRole('button', { name: 'Deny' }).click();
    await page.waitForURL(`${base}/aivault/ui/approvals`);
    const refused = await second;
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as { error: string }).error).toBe('approval_denied');
    expect(hits('/charges/deny-me')).toBe(0);
    expect(daemon.pool.approvals.list()).toEqual([]);

    const off = await runCli(['capability', 'policy', 'set', 'echo/api', '--approval', 'off'], { env });
    expect(off.code, off.stderr).toBe(0);
  });

  it('`aivault lock` ends the session: the live-calls socket closes and pages ask for a new login', async () => {
    await page.goto(`${base}/aivault/ui/calls`);
    await page.locator('#live-state', { hasText: 'live' }).waitFor();
    const lock = await runCli(['lock'], { env });
    expect(lock.code, lock.stderr).toBe(0);
    try {
      // Closed by the daemon (not at the next call event), and the page's reconnects are refused.
      await page.locator('#live-state', { hasText: 'disconnected' }).waitFor({ timeout: 10_000 });
      const res = await page.reload();
      expect(res?.status()).toBe(401);
      await expect(page.locator('h1').textContent()).resolves.toBe('This login link is not valid');
    } finally {
      const unlock = await runCli(['unlock'], { env });
      expect(unlock.code, unlock.stderr).toBe(0);
    }
  });

  it('made no request off loopback', () => {
    expect(requested.length).toBeGreaterThan(5);
    const off = requested.filter(
      (u) =>
        !u.startsWith(`${base}/`) &&
        !u.startsWith(`ws://127.0.0.1:${daemon.http?.port}/`) &&
        !u.startsWith('http://localhost:'),
    );
    expect(off).toEqual([]);
  });
});

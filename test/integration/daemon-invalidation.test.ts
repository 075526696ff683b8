/**
 * The daemon keeps the catalog, tokens, vault meta, secret records and decrypted secrets in memory, keyed
 * on the vault generation (src/core/threads/generation.ts). Every change must be seen by the VERY NEXT call
 * after the writer returned — over the unix socket and over the HTTP listener — with warm caches on
 * both request workers: a secret rotated or deleted, a token revoked, a capability policy changed (all
 * through the compiled CLI, which routes writes through the daemon), and broker.json edited by hand
 * (the vault watcher). No sleeps: each write is followed at once by the calls that must observe it.
 * The CLI writes run twice: with the vault watcher, and without it (and no poll within the test), which
 * proves the daemon's own generation bumps alone give read-your-writes.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MessagePort } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { DaemonOptions } from '../../src/front/main.js';
import { startDaemon, type Daemon } from '../../src/front/main.js';
import { connect, type DaemonClient } from '../../src/core/protocol/client.js';
import type { Envelope } from '../../src/core/broker/types.js';
import { ECHO_SECRET, OPENAI_SECRET, prepareVault, type PreparedVault } from '../e2e/http/http-fixture.js';
import { isolatedEnv, registerSecret, runCli } from '../support/run-cli.js';
import { createOperatorToken, mintProxyToken } from '../../src/stores/tokens/tokens.js';
import { isAivaultError } from '../../src/core/errors.js';

let pv: PreparedVault;
let daemon: Daemon;
let client: DaemonClient;
let baseUrl: string;
let cliEnv: Record<string, string>;
let proxyToken: string;
let proxyTokenId: string;
let operatorToken: string;

type Outcome = { status: number; json: Record<string, unknown> } | { error: string };

const ECHO: Envelope = { capability: 'echo/api', request: { method: 'GET', path: '/items?q=1' } };
const OPENAI: Envelope = { capability: 'openai/models', request: { method: 'GET', path: '/v1/models' } };

async function viaSocket(envelope: Envelope): Promise<Outcome> {
  try {
    const res = await client.invoke(envelope);
    return { status: res.status, json: JSON.parse(Buffer.from(res.body).toString('utf8')) as never };
  } catch (err) {
    if (isAivaultError(err)) return { error: err.code };
    throw err;
  }
}

async function viaHttp(path: string, token = proxyToken): Promise<Outcome> {
  const res = await fetch(`${baseUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
  const json = (await res.json()) as Record<string, unknown>;
  if (res.status >= 400 && typeof json.error === 'string') return { error: json.error };
  return { status: res.status, json };
}

/** The auth header the upstream saw on the last request. */
const lastAuth = (): unknown => pv.upstream.requests.at(-1)?.headers.authorization;

async function cli(args: readonly string[]): Promise<void> {
  const r = await runCli(args, { env: cliEnv });
  expect(r.code, r.stderr).toBe(0);
}

/** Both request workers (and the main thread) warm: a few calls per path, all succeeding. */
async function warm(envelope: Envelope, httpPath: string): Promise<void> {
  for (let i = 0; i < 4; i++) {
    expect(await viaSocket(envelope)).toMatchObject({ status: 200 });
    expect(await viaHttp(httpPath)).toMatchObject({ status: 200 });
  }
}

const MODES: { name: string; watcher: boolean; opts: DaemonOptions }[] = [
  { name: 'with the vault watcher', watcher: true, opts: {} },
  {
    name: 'watcher off: bumps alone',
    watcher: false,
    opts: { testing: { watchVault: false, vaultPollMs: 3_600_000 } },
  },
];

describe.each(MODES)('invalidation, $name: the very next call after a write sees it', (mode) => {
  beforeAll(async () => {
    pv = await prepareVault();
    registerSecret(ECHO_SECRET);
    registerSecret(OPENAI_SECRET);
    daemon = await startDaemon(pv.config, { workers: 2, http: '127.0.0.1:0', ...mode.opts });
    client = await connect({ socketPath: daemon.socketPath });
    baseUrl = `http://127.0.0.1:${daemon.http?.port ?? 0}`;
    cliEnv = isolatedEnv(pv.config.vaultDir, { HOME: pv.home, AIVAULTD_AUTOSTART: '0' });
    const minted = await mintProxyToken(pv.config.vaultDir, { capabilities: ['echo/*', 'openai/*'] });
    proxyToken = minted.token;
    proxyTokenId = minted.info.id;
    operatorToken = (await createOperatorToken(pv.config.vaultDir, { name: 'test' })).token;
  }, 60_000);

  afterAll(async () => {
    client?.close();
    await daemon?.stop();
    pv?.vault.close();
    await pv?.upstream.close();
  });

  it('a rotated secret is injected at once (socket and HTTP), and the caches were warm before', async () => {
    await warm(ECHO, '/v/echo/items?q=1');
    expect(lastAuth()).toBe(`Bearer ${ECHO_SECRET}`);
    const before = await client.operator('status');
    const rotated = registerSecret('sk-echo-rotated-Vb8-new-value');
    await cli(['secrets', 'rotate', '--id', 'ECHO_TOKEN', '--value', rotated]);
    expect(await viaSocket(ECHO)).toMatchObject({ status: 200 });
    expect(lastAuth()).toBe(`Bearer ${rotated}`);
    expect(await viaHttp('/v/echo/items?q=1')).toMatchObject({ status: 200 });
    expect(lastAuth()).toBe(`Bearer ${rotated}`);
    // The warm phase was served from the caches (no reload per call), and the rotate bumped the generation.
    const after = await client.operator('status');
    expect(Number(after.generation)).toBeGreaterThan(Number(before.generation));
    expect(Number(before.secretsCacheHits)).toBeGreaterThan(0);
    expect(Number(before.catalogCacheHits)).toBeGreaterThan(0);
    expect(Number(before.tokensCacheHits)).toBeGreaterThan(0);
  });

  it('a capability policy change applies to the next call', async () => {
    await warm(ECHO, '/v/echo/items?q=1');
    await cli(['capability', 'policy', 'set', '--capability', 'echo/api', '--response-block', 'query']);
    expect(await viaSocket(ECHO)).toMatchObject({ status: 200, json: { query: '[redacted]' } });
    expect(await viaHttp('/v/echo/items?q=1')).toMatchObject({ status: 200, json: { query: '[redacted]' } });
  });

  it.runIf(mode.watcher)('broker.json edited by hand is re-validated on the next call', async () => {
    await warm(ECHO, '/v/echo/items?q=1');
    const path = join(pv.config.vaultDir, 'broker.json');
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { policies: { capabilityId: string }[] };
    doc.policies = [
      ...doc.policies.filter((p) => p.capabilityId !== 'echo/api'),
      { capabilityId: 'echo/api', responseBlocklist: ['path'] } as never,
    ];
    writeFileSync(path, `${JSON.stringify(doc, null, 2)}\n`);
    // The new policy applies (path redacted, query no longer) — or, should policy files ever be sealed,
    // the edit fails closed. Either way the old cached policy must not answer.
    const edited = (o: Outcome): boolean =>
      'error' in o
        ? o.error === 'storage_corrupt' || o.error === 'policy_violation'
        : o.json.path === '[redacted]' && o.json.query === 'q=1';
    expect(edited(await viaSocket(ECHO))).toBe(true);
    expect(edited(await viaHttp('/v/echo/items?q=1'))).toBe(true);
  });

  it('a write through the HTTP operator API applies to the next call', async () => {
    await warm(ECHO, '/v/echo/items?q=1');
    const res = await fetch(`${baseUrl}/aivault/capabilities/echo/api`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${operatorToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ responseBlocklist: ['method'] }),
    });
    expect(res.status, await res.text()).toBe(200);
    expect(await viaSocket(ECHO)).toMatchObject({ status: 200, json: { method: '[redacted]' } });
    expect(await viaHttp('/v/echo/items?q=1')).toMatchObject({ status: 200, json: { method: '[redacted]' } });
  });

  it('lock stops the next call although the secret is cached; unlock resumes', async () => {
    await warm(ECHO, '/v/echo/items?q=1');
    // The daemon runs in this process: what its main thread posts to the request workers is visible here.
    const posts = vi.spyOn(MessagePort.prototype, 'postMessage');
    await client.operator('lock');
    // Every request worker is told to drop its kept values at once (src/request-worker/forget.ts).
    const forgets = posts.mock.calls
      .flatMap(([msg]) => (Array.isArray(msg) ? msg : [msg]))
      .filter((m) => (m as { t?: unknown } | null)?.t === 'forget');
    posts.mockRestore();
    const workers = daemon.pool.workerSpread().calls.length;
    const lockedSocket = await viaSocket(ECHO);
    const lockedHttp = await viaHttp('/v/echo/items?q=1');
    await client.operator('unlock', ''); // before any assertion: the later tests need an unlocked vault
    expect(lockedSocket).toEqual({ error: 'vault_unavailable' });
    expect(lockedHttp).toEqual({ error: 'vault_unavailable' });
    expect(forgets.length).toBeGreaterThan(0);
    expect(forgets.length).toBe(workers);
    expect(await viaSocket(ECHO)).toMatchObject({ status: 200 });
  });

  it('a revoked proxy token is refused on the next HTTP call', async () => {
    // Minted through the CLI (so through the daemon): usable by the very next call, too.
    const minted = await runCli(['token', 'mint', '--capability', 'openai/*', '-v'], { env: cliEnv });
    expect(minted.code, minted.stderr).toBe(0);
    const m = JSON.parse(minted.stdout) as { token: string; id: string };
    const other = { token: m.token, info: { id: m.id } };
    await warm(OPENAI, '/v/openai/v1/models');
    expect(await viaHttp('/v/openai/v1/models', other.token)).toMatchObject({ status: 200 });
    await cli(['token', 'revoke', other.info.id]);
    expect(await viaHttp('/v/openai/v1/models', other.token)).toEqual({ error: 'token_invalid' });
    // The other token still works (the cache was reloaded, not emptied).
    expect(await viaHttp('/v/openai/v1/models')).toMatchObject({ status: 200 });
    expect(proxyTokenId).toMatch(/^tok_/);
  });

  it('a deleted secret (and the credential it took along) is gone for the next call', async () => {
    await warm(OPENAI, '/v/openai/v1/models');
    expect(lastAuth()).toBe(`Bearer ${OPENAI_SECRET}`);
    const before = pv.upstream.requests.length;
    await cli(['secrets', 'delete', '--id', 'OPENAI_API_KEY']);
    expect(await viaSocket(OPENAI)).toHaveProperty('error');
    expect(await viaHttp('/v/openai/v1/models')).toHaveProperty('error');
    expect(pv.upstream.requests.length).toBe(before);
  });
});

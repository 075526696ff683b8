/**
 * The vault watcher (src/front/vault-watcher.ts): writes made outside the daemon — a hand edit, another
 * tool writing tokens.json — bump the vault generation, so the next call re-reads and re-validates the
 * files (a tampered record fails closed). With fs.watch off, the cached value keeps answering until the
 * safety-net poll notices the change (this also proves the caches really are warm: no stat per call).
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished, vi } from 'vitest';
import { startDaemon, type DaemonOptions } from '../../src/front/main.js';
import { connect } from '../../src/core/protocol/client.js';
import type { Envelope } from '../../src/core/broker/types.js';
import { mintProxyToken } from '../../src/stores/tokens/tokens.js';
import { isAivaultError } from '../../src/core/errors.js';
import { prepareVault } from '../e2e/http/http-fixture.js';

const ECHO: Envelope = { capability: 'echo/api', request: { method: 'GET', path: '/items?q=1' } };

async function setup(opts: DaemonOptions = {}) {
  const pv = await prepareVault();
  const daemon = await startDaemon(pv.config, { workers: 1, http: '127.0.0.1:0', ...opts });
  const client = await connect({ socketPath: daemon.socketPath });
  onTestFinished(async () => {
    client.close();
    await daemon.stop();
    pv.vault.close();
    await pv.upstream.close();
  });
  const baseUrl = `http://127.0.0.1:${daemon.http?.port ?? 0}`;
  const call = async (): Promise<Record<string, unknown> | { error: string }> => {
    try {
      const res = await client.invoke(ECHO);
      return JSON.parse(Buffer.from(res.body).toString('utf8')) as Record<string, unknown>;
    } catch (err) {
      if (isAivaultError(err)) return { error: err.code };
      throw err;
    }
  };
  const http = async (token: string): Promise<number> => {
    const res = await fetch(`${baseUrl}/v/echo/items`, { headers: { authorization: `Bearer ${token}` } });
    await res.arrayBuffer();
    return res.status;
  };
  /** Hand edit: a response blocklist for echo/api written straight into broker.json. */
  const blockPath = (): void => {
    const path = join(pv.config.vaultDir, 'broker.json');
    const doc = JSON.parse(readFileSync(path, 'utf8')) as { policies: unknown[] };
    doc.policies.push({ capabilityId: 'echo/api', responseBlocklist: ['path'] });
    writeFileSync(path, `${JSON.stringify(doc, null, 2)}\n`);
  };
  return { pv, daemon, client, call, http, blockPath };
}

describe('vault watcher', () => {
  it('notices a hand edit of broker.json before the next call', async () => {
    const { call, blockPath, client } = await setup();
    for (let i = 0; i < 3; i++) expect(await call()).toMatchObject({ path: '/items' });
    const before = Number((await client.operator('status')).generation);
    blockPath();
    expect(await call()).toMatchObject({ path: '[redacted]' });
    expect(Number((await client.operator('status')).generation)).toBeGreaterThan(before);
  });

  it('notices a token minted by another process (tokens.json written outside the daemon)', async () => {
    const { pv, http } = await setup();
    const first = await mintProxyToken(pv.config.vaultDir, { capabilities: ['echo/*'] });
    expect(await http(first.token)).toBe(200);
    expect(await http(first.token)).toBe(200);
    const second = await mintProxyToken(pv.config.vaultDir, { capabilities: ['echo/*'] });
    expect(await http(second.token)).toBe(200);
  });

  it('a secret record tampered with by hand fails closed on the next call, caches warm', async () => {
    const { pv, call } = await setup();
    for (let i = 0; i < 3; i++) expect(await call()).toMatchObject({ path: '/items' });
    const dir = join(pv.config.vaultDir, 'secrets');
    const file = readdirSync(dir).find((n) => n.endsWith('.json'));
    expect(file).toBeDefined();
    writeFileSync(join(dir, file as string), '{"not":"a record"}\n');
    expect(await call()).toEqual({ error: 'storage_corrupt' });
  });

  it('with fs.watch off the cached policy answers until the safety-net poll notices the edit', async () => {
    const { call, blockPath, client } = await setup({ testing: { watchVault: false, vaultPollMs: 400 } });
    // The poll's first fingerprint is taken at start-up (a few stats), long before this call returns.
    expect(await call()).toMatchObject({ path: '/items' });
    const generation = async (): Promise<number> => Number((await client.operator('status')).generation);
    const before = await generation();
    blockPath();
    const next = await call();
    // No watcher: unless the poll happened to run in between, the very next call is served from the
    // warm cache (no stat per call)…
    if ((await generation()) === before) expect(next).toMatchObject({ path: '/items' });
    // …until the poll sees the changed stat and bumps the generation.
    await vi.waitFor(async () => expect(await call()).toMatchObject({ path: '[redacted]' }), {
      timeout: 5000,
      interval: 50,
    });
  });
});

/**
 * Shared setup for the auth e2e tests: a real dev vault (file provider, `init --dev`), a real aivaultd
 * (uWS + piscina request workers + crypto worker) and ONE local HTTPS mock whose certificate (signed by the
 * test CA) covers every provider host these tests call; AIVAULT_DEV_RESOLVE maps all of them to it.
 * Registry credentials are auto-provisioned exactly as `aivault secrets create` does; custom credentials
 * (hmac, mtls) go through the catalog API.
 */
import type { TestIntervals } from '../../../src/core/config/test-intervals.js';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../../../src/core/config/env.js';
import { vaultPaths, type Vault } from '../../../src/stores/vault/index.js';
import { afterSecretCreated } from '../../../src/cli/provisioning.js';
import type { Daemon } from '../../../src/front/main.js';
import type { DaemonClient } from '../../../src/core/protocol/client.js';
import type { AuthSpec } from '../../../src/core/registry/types.js';
import type { Envelope } from '../../../src/core/broker/types.js';
import { startHttpsUpstream, type HttpsUpstream, type SeenRequest } from '../../support/https-upstream.js';
import { issueServerCert } from '../../support/test-ca.js';
import { addCustomCredential, createDevVault, startDaemonFor } from '../../support/dev-vault.js';

export const PROVIDER_HOSTS = [
  'api.openai.com',
  'generativelanguage.googleapis.com',
  'api.telegram.org',
  'api.twilio.com',
  'api.datadoghq.com',
  'api.trello.com',
  'api.spotify.com',
  'accounts.spotify.com',
  's3.us-east-1.amazonaws.com',
  'upstream.test',
] as const;

export interface AuthFixture {
  readonly config: Config;
  readonly vault: Vault;
  readonly upstream: HttpsUpstream;
  readonly daemon: Daemon;
  readonly client: DaemonClient;
  /** Create a (registry-claimed) secret and auto-provision its credential like `secrets create`. */
  addSecret(name: string, value: string): Promise<string>;
  /** A custom credential `id` on upstream.test with capability `<id>/api` (GET + POST, every path). */
  addCustom(id: string, auth: AuthSpec, secretValue: string): Promise<string>;
  invoke(envelope: Envelope): ReturnType<DaemonClient['invoke']>;
  /** Stop and start aivaultd on the same vault (new threads, nothing cached in memory). */
  restart(): Promise<void>;
  /** Every audit line written so far (raw JSONL text). */
  auditText(): string;
  /** Requests the mock received on `path` (exact). */
  seen(path: string): SeenRequest[];
  close(): Promise<void>;
}

export async function startAuthFixture(
  opts: { workers?: number; testing?: TestIntervals } = {},
): Promise<AuthFixture> {
  const upstream = await startHttpsUpstream({
    ...issueServerCert(PROVIDER_HOSTS),
    tokenPaths: ['/api/token'],
  });
  lastUpstream = upstream;
  const dv = await createDevVault({
    prefix: 'aivault-auth-e2e-',
    upstream: upstream.port,
    hosts: PROVIDER_HOSTS,
  });
  const { config, vault } = dv;
  const workers = opts.workers ?? 2;
  const daemonOpts = { workers, ...(opts.testing ? { testing: opts.testing } : {}) };
  let d = await startDaemonFor(config, daemonOpts);

  const fx: AuthFixture = {
    config,
    vault,
    upstream,
    get daemon() {
      return d.daemon;
    },
    get client() {
      return d.client;
    },
    async addSecret(name, value) {
      const meta = await vault.createSecret({ name, value, scope: { kind: 'global' } });
      await afterSecretCreated(config, vault, meta);
      return meta.id;
    },
    addCustom: (id, auth, secretValue) =>
      addCustomCredential(dv, {
        id,
        secretName: `${id.toUpperCase().replace(/-/g, '_')}_SECRET`,
        secretValue,
        auth,
        capabilities: { [`${id}/api`]: { methods: ['GET', 'POST'] } },
      }),
    invoke: (envelope) => d.client.invoke(envelope),
    async restart() {
      await d.stop();
      d = await startDaemonFor(config, daemonOpts);
    },
    auditText() {
      const dir = vaultPaths(config).auditDir;
      let names: string[] = [];
      try {
        names = readdirSync(dir).filter((n) => n.endsWith('.jsonl'));
      } catch {
        return '';
      }
      return names.map((n) => readFileSync(join(dir, n), 'utf8')).join('');
    },
    seen: (path) => upstream.requests.filter((r) => r.path === path),
    async close() {
      await d.stop();
      dv.close();
      await upstream.close();
    },
  };
  return fx;
}

/** The last started fixture's upstream (tests in a file run one after another). */
let lastUpstream: HttpsUpstream | undefined;

/**
 * What the upstream saw for the call that returned `body`. Read from the upstream's own record, not from
 * the echoed body: the body the caller gets has every reflected secret value scrubbed.
 */
export function echo(body: Uint8Array): SeenRequest {
  const echoed = JSON.parse(Buffer.from(body).toString('utf8')) as SeenRequest;
  const recorded = lastUpstream?.requests.at(-1);
  if (!recorded || recorded.method !== echoed.method) return echoed;
  return recorded;
}

/** Run `fn`, expecting it to reject; returns the error's code and message (as the caller sees them). */
export async function rejection(fn: () => Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await fn();
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return { code: String(e.code), message: String(e.message) };
  }
  throw new Error('expected a rejection');
}

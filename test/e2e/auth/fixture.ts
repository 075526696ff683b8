/**
 * Shared setup for the auth e2e tests: a real dev vault (file provider, `init --dev`), a real aivaultd
 * (uWS + piscina request workers + crypto worker) and ONE local HTTPS mock whose certificate (signed by the
 * test CA) covers every provider host these tests call; AIVAULT_DEV_RESOLVE maps all of them to it.
 * Registry credentials are auto-provisioned exactly as `aivault secrets create` does; custom credentials
 * (hmac, mtls) go through the catalog API.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomInt } from 'node:crypto';
import { loadConfig, type Config } from '../../../src/config/env.js';
import { Vault, readSecretRecord, toSecretInfo, toSecretMeta, vaultPaths } from '../../../src/vault/index.js';
import { catalogPaths, createCapability, createCredential } from '../../../src/catalog/index.js';
import { registry } from '../../../src/registry/index.js';
import { afterSecretCreated } from '../../../src/cli/provisioning.js';
import { startDaemon, type Daemon } from '../../../src/daemon/main.js';
import { connect, type DaemonClient } from '../../../src/protocol/client.js';
import type { AuthSpec } from '../../../src/registry/types.js';
import type { Envelope } from '../../../src/broker/types.js';
import { startHttpsUpstream, type HttpsUpstream, type SeenRequest } from '../../support/https-upstream.js';
import { createTestCa, TEST_HOSTS } from '../../support/test-ca.js';

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

/** A server cert for `hosts`, signed by the (per-process) test CA. */
function issueServerCert(hosts: readonly string[]): { cert: string; key: string } {
  const ca = createTestCa();
  const dir = mkdtempSync(join(tmpdir(), 'aivault-auth-cert-'));
  const run = (args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  const san = [...new Set([...hosts, ...TEST_HOSTS])].map((h) => `DNS:${h}`).join(',');
  writeFileSync(
    join(dir, 'server.ext'),
    `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${san},IP:127.0.0.1\n`,
  );
  run(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ec.key']);
  run(['pkcs8', '-topk8', '-nocrypt', '-in', 'ec.key', '-out', 'server.key']);
  run(['req', '-new', '-key', 'server.key', '-subj', '/CN=aivault auth e2e', '-out', 'server.csr']);
  run([
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    join(ca.dir, 'ca.pem'),
    '-CAkey',
    join(ca.dir, 'ca.key'),
    '-set_serial',
    String(randomInt(1, 2 ** 31)),
    '-days',
    '2',
    '-sha256',
    '-extfile',
    'server.ext',
    '-out',
    'server.pem',
  ]);
  return {
    cert: readFileSync(join(dir, 'server.pem'), 'utf8'),
    key: readFileSync(join(dir, 'server.key'), 'utf8'),
  };
}

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

export async function startAuthFixture(opts: { workers?: number } = {}): Promise<AuthFixture> {
  const ca = createTestCa();
  const upstream = await startHttpsUpstream({
    ...issueServerCert(PROVIDER_HOSTS),
    tokenPaths: ['/api/token'],
  });
  const home = mkdtempSync(join(tmpdir(), 'aivault-auth-e2e-'));
  const config = loadConfig({
    HOME: home,
    AIVAULT_DIR: join(home, 'vault'),
    AIVAULTD_SOCKET: join(home, 'run', 'aivaultd.sock'),
    AIVAULT_DEV_RESOLVE: PROVIDER_HOSTS.map((h) => `${h}=127.0.0.1:${upstream.port}`).join(','),
    AIVAULT_DEV_CA_CERT_PATH: ca.caCertPath,
    AIVAULT_DEV_HTTP1_ONLY: '1',
    AIVAULT_DISABLE_DISK_LOGS: '0',
  });
  const vault = await Vault.init(config, { provider: 'file', dev: true });
  const paths = catalogPaths(config.vaultDir);
  const workers = opts.workers ?? 2;
  let daemon = await startDaemon(config, { workers });
  let client = await connect({ socketPath: daemon.socketPath });

  const fx: AuthFixture = {
    config,
    vault,
    upstream,
    get daemon() {
      return daemon;
    },
    get client() {
      return client;
    },
    async addSecret(name, value) {
      const meta = await vault.createSecret({ name, value, scope: { kind: 'global' } });
      await afterSecretCreated(config, vault, meta);
      return meta.id;
    },
    async addCustom(id, auth, secretValue) {
      const meta = await vault.createSecret({
        name: `${id.toUpperCase().replace(/-/g, '_')}_SECRET`,
        value: secretValue,
        scope: { kind: 'global' },
      });
      const info = toSecretInfo(toSecretMeta(await readSecretRecord(vaultPaths(config), meta.id)));
      await createCredential(
        paths,
        registry,
        { id, provider: id, secretRef: `vault:secret:${meta.id}`, auth, hosts: ['upstream.test'] },
        { secrets: [info] },
      );
      await createCapability(
        paths,
        registry,
        { id: `${id}/api`, credentialId: id, methods: ['GET', 'POST'], pathPrefixes: ['/'] },
        { secrets: [info] },
      );
      return meta.id;
    },
    invoke: (envelope) => client.invoke(envelope),
    async restart() {
      client.close();
      await daemon.stop();
      daemon = await startDaemon(config, { workers });
      client = await connect({ socketPath: daemon.socketPath });
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
      client.close();
      await daemon.stop();
      vault.close();
      await upstream.close();
    },
  };
  return fx;
}

export function echo(body: Uint8Array): SeenRequest {
  return JSON.parse(Buffer.from(body).toString('utf8')) as SeenRequest;
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

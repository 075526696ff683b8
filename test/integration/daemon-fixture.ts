/**
 * Shared setup for daemon-*.test.ts: a real dev vault (file provider, `init --dev`) in a temp dir, one
 * secret, a custom `echo` credential (header auth) for upstream.test, capabilities, the real HTTPS echo
 * upstream mapped via AIVAULT_DEV_RESOLVE, and a real aivaultd (uWS + piscina + crypto worker) in-process.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../src/config/env.js';
import { Vault, toSecretInfo, toSecretMeta, readSecretRecord, vaultPaths } from '../../src/vault/index.js';
import { catalogPaths, createCapability, createCredential, setPolicy } from '../../src/catalog/index.js';
import { registry } from '../../src/registry/index.js';
import { startDaemon, type Daemon, type DaemonOptions } from '../../src/daemon/main.js';
import { connect, type DaemonClient } from '../../src/protocol/client.js';
import { startHttpsUpstream, type HttpsUpstream } from '../support/https-upstream.js';
import { createTestCa } from '../support/test-ca.js';
import type { Envelope } from '../../src/broker/types.js';

export const SECRET = 'sk-test-Zq9-very-secret-value';

export interface DaemonFixture {
  readonly config: Config;
  readonly vault: Vault;
  readonly secretId: string;
  readonly upstream: HttpsUpstream;
  readonly daemon: Daemon;
  readonly client: DaemonClient;
  connect(): Promise<DaemonClient>;
  close(): Promise<void>;
}

export interface FixtureOptions extends DaemonOptions {
  /** Extra capabilities: id → rate limit per minute. */
  readonly limited?: Readonly<Record<string, number>>;
  readonly blocklist?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
}

export function envelope(
  path: string,
  method = 'GET',
  capability = 'echo/api',
  extra: Partial<Envelope['request']> = {},
): Envelope {
  return { capability, request: { method, path, ...extra } };
}

export async function startFixture(opts: FixtureOptions = {}): Promise<DaemonFixture> {
  const upstream = await startHttpsUpstream();
  const ca = createTestCa();
  const home = mkdtempSync(join(tmpdir(), 'aivaultd-e2e-'));
  const config = loadConfig({
    HOME: home,
    AIVAULT_DIR: join(home, 'vault'),
    AIVAULTD_SOCKET: join(home, 'run', 'aivaultd.sock'),
    AIVAULT_DEV_RESOLVE: `upstream.test=127.0.0.1:${upstream.port},other.test=127.0.0.1:${upstream.port}`,
    AIVAULT_DEV_CA_CERT_PATH: ca.caCertPath,
    AIVAULT_DEV_HTTP1_ONLY: '1',
    AIVAULT_DISABLE_DISK_LOGS: '0',
    ...opts.env,
  });
  const vault = await Vault.init(config, { provider: 'file', dev: true });
  const secret = await vault.createSecret({ name: 'ECHO_TOKEN', value: SECRET, scope: { kind: 'global' } });
  const paths = catalogPaths(config.vaultDir);
  const info = toSecretInfo(toSecretMeta(await readSecretRecord(vaultPaths(config), secret.id)));
  await createCredential(
    paths,
    registry,
    {
      id: 'echo',
      provider: 'echo',
      secretRef: `vault:secret:${secret.id}`,
      auth: { header: { header_name: 'authorization', value_template: 'Bearer {{secret}}' } },
      hosts: ['upstream.test'],
    },
    { secrets: [info] },
  );
  await createCapability(
    paths,
    registry,
    { id: 'echo/api', credentialId: 'echo', methods: ['GET', 'POST'], pathPrefixes: ['/'] },
    { secrets: [info] },
  );
  for (const [id, limit] of Object.entries(opts.limited ?? {})) {
    await createCapability(
      paths,
      registry,
      { id, credentialId: 'echo', methods: ['GET'], pathPrefixes: ['/'] },
      { secrets: [info] },
    );
    await setPolicy(paths, registry, { capabilityId: id, rateLimitPerMinute: limit });
  }
  if (opts.blocklist) {
    await createCapability(
      paths,
      registry,
      { id: 'echo/redacted', credentialId: 'echo', methods: ['GET'], pathPrefixes: ['/'] },
      { secrets: [info] },
    );
    await setPolicy(paths, registry, { capabilityId: 'echo/redacted', responseBlocklist: opts.blocklist });
  }
  const daemon = await startDaemon(config, { workers: 2, ...opts });
  const clients: DaemonClient[] = [];
  const open = async (): Promise<DaemonClient> => {
    const c = await connect({ socketPath: daemon.socketPath });
    clients.push(c);
    return c;
  };
  const client = await open();
  return {
    config,
    vault,
    secretId: secret.id,
    upstream,
    daemon,
    client,
    connect: open,
    async close() {
      for (const c of clients) c.close();
      await daemon.stop();
      vault.close();
      await upstream.close();
    },
  };
}

export function json<T = Record<string, unknown>>(body: Uint8Array): T {
  return JSON.parse(Buffer.from(body).toString('utf8')) as T;
}

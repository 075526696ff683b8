/**
 * Shared setup for daemon-*.test.ts: a real dev vault (file provider, `init --dev`) in a temp dir, one
 * secret, a custom `echo` credential (header auth) for upstream.test, capabilities, the real HTTPS echo
 * upstream mapped via AIVAULT_DEV_RESOLVE, and a real aivaultd (uWS + piscina + crypto worker) in-process.
 */
import type { Config } from '../../src/core/config/env.js';
import type { Vault } from '../../src/stores/vault/index.js';
import type { Daemon, DaemonOptions } from '../../src/front/main.js';
import type { DaemonClient } from '../../src/core/protocol/client.js';
import { startHttpsUpstream, type HttpsUpstream } from '../support/https-upstream.js';
import {
  addCustomCredential,
  createDevVault,
  startDaemonFor,
  type CapabilitySpec,
} from '../support/dev-vault.js';
import type { Envelope } from '../../src/core/broker/types.js';

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
  const { limited = {}, blocklist, env, ...daemonOpts } = opts;
  const upstream = await startHttpsUpstream();
  const dv = await createDevVault({
    prefix: 'aivaultd-e2e-',
    upstream: upstream.port,
    hosts: ['upstream.test', 'other.test'],
    env,
  });
  const capabilities: Record<string, CapabilitySpec> = { 'echo/api': { methods: ['GET', 'POST'] } };
  for (const [id, limit] of Object.entries(limited)) {
    capabilities[id] = { methods: ['GET'], policy: { rateLimitPerMinute: limit } };
  }
  if (blocklist)
    capabilities['echo/redacted'] = { methods: ['GET'], policy: { responseBlocklist: blocklist } };
  const secretId = await addCustomCredential(dv, {
    id: 'echo',
    secretName: 'ECHO_TOKEN',
    secretValue: SECRET,
    capabilities,
  });
  const d = await startDaemonFor(dv.config, daemonOpts);
  return {
    config: dv.config,
    vault: dv.vault,
    secretId,
    upstream,
    daemon: d.daemon,
    client: d.client,
    connect: d.connect,
    async close() {
      await d.stop();
      dv.close();
      await upstream.close();
    },
  };
}

export function json<T = Record<string, unknown>>(body: Uint8Array): T {
  return JSON.parse(Buffer.from(body).toString('utf8')) as T;
}

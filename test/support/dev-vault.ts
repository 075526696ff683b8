/**
 * A throwaway dev vault for tests and benches, in pieces that compose (one place to fix setup bugs):
 *   createDevHome(opts)           temp HOME + vault dir + env; with `upstream` (the port of a
 *                                 test/support/https-upstream.ts mock) `hosts` resolve to it, test CA trusted
 *   createDevVault(opts)          the same + `init --dev` in-process (file provider): config, vault
 *   addCustomCredential(dv, spec) a secret + a custom credential on upstream.test + its capabilities
 *   startDaemonFor(config, opts)  an in-process aivaultd + a connected client; stop() closes both
 *   stopAutostartedDaemon(dir)    SIGKILL the aivaultd the CLI autostarted for a vault (its pid file)
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../src/core/config/env.js';
import {
  Vault,
  readSecretRecord,
  toSecretInfo,
  toSecretMeta,
  vaultPaths,
} from '../../src/stores/vault/index.js';
import {
  catalogPaths,
  createCapability,
  createCredential,
  setPolicy,
} from '../../src/stores/catalog/index.js';
import type { SetPolicyInput } from '../../src/stores/catalog/index.js';
import { registry } from '../../src/core/registry/index.js';
import type { AuthSpec } from '../../src/core/registry/types.js';
import { startDaemon, type DaemonOptions } from '../../src/front/main.js';
import { connect, type DaemonClient } from '../../src/core/protocol/client.js';
import { isolatedEnv } from './run-cli.js';
import { createTestCa } from './test-ca.js';

export interface DevHomeOptions {
  /** mkdtemp prefix (default `aivault-dev-`) and the directory it is made in (default os.tmpdir()). */
  readonly prefix?: string;
  readonly parent?: string;
  /** Local port `hosts` (default upstream.test) resolve to; also trusts the test CA and forces HTTP/1. */
  readonly upstream?: number;
  readonly hosts?: readonly string[];
  /** More dev-resolve entries: host → local port. */
  readonly extraResolve?: Readonly<Record<string, number>>;
  /** Start from this process's env minus AIVAULT* (isolatedEnv), for child processes (CLI, daemon). */
  readonly inherit?: boolean;
  /** Extra variables, applied last. */
  readonly env?: Readonly<Record<string, string>>;
}

export function createDevHome(opts: DevHomeOptions = {}) {
  const home = mkdtempSync(join(opts.parent ?? tmpdir(), opts.prefix ?? 'aivault-dev-'));
  const vaultDir = join(home, 'vault');
  const socketPath = join(vaultDir, 'run', 'aivaultd.sock'); // loadConfig's default for AIVAULT_DIR
  const port = opts.upstream;
  const resolve = [
    ...(port === undefined ? [] : (opts.hosts ?? ['upstream.test']).map((h) => `${h}=127.0.0.1:${port}`)),
    ...Object.entries(opts.extraResolve ?? {}).map(([h, p]) => `${h}=127.0.0.1:${p}`),
  ];
  const vars: Record<string, string> = {
    HOME: home,
    ...(resolve.length === 0
      ? {}
      : {
          AIVAULT_DEV_RESOLVE: resolve.join(','),
          AIVAULT_DEV_CA_CERT_PATH: createTestCa().caCertPath,
          AIVAULT_DEV_HTTP1_ONLY: '1',
        }),
    ...opts.env,
  };
  const env = opts.inherit ? isolatedEnv(vaultDir, vars) : { AIVAULT_DIR: vaultDir, ...vars };
  /** remove(): delete the temp HOME and everything in it. */
  return { home, vaultDir, socketPath, env, remove: () => rmSync(home, { recursive: true, force: true }) };
}

export type DevVault = Awaited<ReturnType<typeof createDevVault>>;

/** A temp HOME with a file-provider vault initialised in-process (`init --dev` unless `dev: false`). */
export async function createDevVault(opts: DevHomeOptions & { readonly dev?: boolean } = {}) {
  const dh = createDevHome(opts);
  const config = loadConfig(dh.env);
  const vault = await Vault.init(config, { provider: 'file', dev: opts.dev ?? true });
  /** close(): close the vault and remove the temp HOME. */
  const close = (): void => {
    vault.close();
    dh.remove();
  };
  return { ...dh, config, vault, close };
}

export interface CustomCredentialSpec {
  /** Credential id, also its provider name; on upstream.test. */
  readonly id: string;
  readonly secretName: string;
  readonly secretValue: string;
  /** Default: header `authorization: Bearer {{secret}}`. */
  readonly auth?: AuthSpec;
  /** Capability id → methods (every path) and policy fields to set on it. */
  readonly capabilities: Readonly<Record<string, CapabilitySpec>>;
}
export interface CapabilitySpec {
  readonly methods: readonly string[];
  /** Default: every path (`/`). */
  readonly pathPrefixes?: readonly string[];
  readonly policy?: Omit<SetPolicyInput, 'capabilityId'>;
}

/** A global secret, custom credential `spec.id` using it, and its capabilities. Returns the secret id. */
export async function addCustomCredential(
  dv: { readonly config: Config; readonly vault: Vault },
  spec: CustomCredentialSpec,
): Promise<string> {
  const { id, secretName: name, secretValue: value } = spec;
  const secret = await dv.vault.createSecret({ name, value, scope: { kind: 'global' } });
  const info = toSecretInfo(toSecretMeta(await readSecretRecord(vaultPaths(dv.config), secret.id)));
  const ctx = { secrets: [info] };
  const paths = catalogPaths(dv.config.vaultDir);
  const auth = spec.auth ?? { header: { header_name: 'authorization', value_template: 'Bearer {{secret}}' } };
  const secretRef = `vault:secret:${secret.id}`;
  const credential = { id, provider: id, secretRef, auth, hosts: ['upstream.test'] };
  await createCredential(paths, registry, credential, ctx);
  for (const [capabilityId, { methods, pathPrefixes = ['/'], policy }] of Object.entries(spec.capabilities)) {
    const cap = { id: capabilityId, credentialId: id, methods, pathPrefixes };
    await createCapability(paths, registry, cap, ctx);
    if (policy) await setPolicy(paths, registry, { capabilityId, ...policy });
  }
  return secret.id;
}

/** A real aivaultd (uWS + piscina + crypto worker) in this process (2 request workers unless told). */
export async function startDaemonFor(config: Config, opts: DaemonOptions = {}) {
  const daemon = await startDaemon(config, { workers: 2, ...opts });
  const clients: DaemonClient[] = [];
  /** Another client on the daemon's socket; stop() closes it. */
  const open = async (): Promise<DaemonClient> => {
    const c = await connect({ socketPath: daemon.socketPath });
    clients.push(c);
    return c;
  };
  const client = await open();
  /** Close every client, then stop the daemon. */
  const stop = async (): Promise<void> => {
    for (const c of clients) c.close();
    await daemon.stop();
  };
  return { daemon, client, connect: open, stop };
}

/** SIGKILL the aivaultd the CLI autostarted for this vault (pid from its pid file), if any. */
export function stopAutostartedDaemon(vaultDir: string): void {
  try {
    const pid = Number(readFileSync(join(vaultDir, 'run', 'aivaultd.pid'), 'utf8').trim());
    if (Number.isInteger(pid) && pid > 1 && pid !== process.pid) process.kill(pid, 'SIGKILL');
  } catch {
    // no daemon
  }
}

/**
 * Shared setup for the loopback HTTP listener tests: a real dev vault (file provider, `init --dev`), three
 * credentials (custom `echo` → upstream.test, registry `openai` and `anthropic`), the HTTPS mock upstream
 * playing all three hosts (AIVAULT_DEV_RESOLVE + the throwaway test CA), and a real in-process aivaultd
 * (uWS + piscina + crypto worker) with `--http 127.0.0.1:0`.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../../src/config/env.js';
import { Vault, toSecretInfo, toSecretMeta, readSecretRecord, vaultPaths } from '../../../src/vault/index.js';
import { catalogPaths, createCapability, createCredential } from '../../../src/catalog/index.js';
import { registry } from '../../../src/registry/index.js';
import { startDaemon, type Daemon, type DaemonOptions } from '../../../src/daemon/main.js';
import { startHttpsUpstream, type HttpsUpstream } from '../../support/https-upstream.js';
import { createTestCa } from '../../support/test-ca.js';
import { mintProxyToken, createOperatorToken, type MintProxyInput } from '../../../src/tokens/tokens.js';

export const ECHO_SECRET = 'sk-echo-Qm7-very-secret-value';
export const OPENAI_SECRET = 'sk-openai-Zr4-real-key-never-shown';
export const ANTHROPIC_SECRET = 'sk-ant-Wp2-real-key-never-shown';

export interface HttpFixture {
  readonly home: string;
  readonly config: Config;
  readonly env: Record<string, string>;
  readonly vault: Vault;
  readonly upstream: HttpsUpstream;
  readonly daemon: Daemon;
  readonly baseUrl: string;
  mint(input: MintProxyInput): Promise<string>;
  operator(): Promise<string>;
  close(): Promise<void>;
}

export interface PreparedVault {
  readonly home: string;
  readonly config: Config;
  readonly env: Record<string, string>;
  readonly vault: Vault;
  readonly upstream: HttpsUpstream;
}

/** The vault + upstream half of the fixture (no daemon): for tests that drive the compiled CLI. */
export async function prepareVault(extraEnv: Record<string, string> = {}): Promise<PreparedVault> {
  const upstream = await startHttpsUpstream();
  const ca = createTestCa();
  const home = mkdtempSync(join(tmpdir(), 'aivault-http-'));
  const mapped = `127.0.0.1:${upstream.port}`;
  const env: Record<string, string> = {
    HOME: home,
    AIVAULT_DIR: join(home, 'vault'),
    AIVAULTD_SOCKET: join(home, 'run', 'aivaultd.sock'),
    AIVAULT_DEV_RESOLVE: `upstream.test=${mapped},api.openai.com=${mapped},api.anthropic.com=${mapped}`,
    AIVAULT_DEV_CA_CERT_PATH: ca.caCertPath,
    AIVAULT_DEV_HTTP1_ONLY: '1',
    ...extraEnv,
  };
  const config = loadConfig(env);
  const vault = await Vault.init(config, { provider: 'file', dev: true });
  const paths = catalogPaths(config.vaultDir);
  const infos = [];
  const ids: Record<string, string> = {};
  for (const [name, value] of [
    ['ECHO_TOKEN', ECHO_SECRET],
    ['OPENAI_API_KEY', OPENAI_SECRET],
    ['ANTHROPIC_API_KEY', ANTHROPIC_SECRET],
  ] as const) {
    const s = await vault.createSecret({ name, value, scope: { kind: 'global' } });
    ids[name] = s.id;
    infos.push(toSecretInfo(toSecretMeta(await readSecretRecord(vaultPaths(config), s.id))));
  }
  await createCredential(
    paths,
    registry,
    {
      id: 'echo',
      provider: 'echo',
      secretRef: `vault:secret:${ids.ECHO_TOKEN}`,
      auth: { header: { header_name: 'authorization', value_template: 'Bearer {{secret}}' } },
      hosts: ['upstream.test'],
    },
    { secrets: infos },
  );
  await createCapability(
    paths,
    registry,
    { id: 'echo/api', credentialId: 'echo', methods: ['GET', 'POST'], pathPrefixes: ['/'] },
    { secrets: infos },
  );
  await createCapability(
    paths,
    registry,
    { id: 'echo/special', credentialId: 'echo', methods: ['GET'], pathPrefixes: ['/special'] },
    { secrets: infos },
  );
  for (const provider of ['openai', 'anthropic'] as const) {
    const name = provider === 'openai' ? 'OPENAI_API_KEY' : 'ANTHROPIC_API_KEY';
    await createCredential(
      paths,
      registry,
      { id: provider, provider, secretRef: `vault:secret:${ids[name]}` },
      { secrets: infos },
    );
  }
  return { home, config, env, vault, upstream };
}

export async function startHttpFixture(
  opts: DaemonOptions & { env?: Record<string, string> } = {},
): Promise<HttpFixture> {
  const { home, config, env, vault, upstream } = await prepareVault(opts.env);
  const daemon = await startDaemon(config, { workers: 1, http: '127.0.0.1:0', ...opts });
  if (!daemon.http) throw new Error('http listener did not start');
  const baseUrl = `http://127.0.0.1:${daemon.http.port}`;
  return {
    home,
    config,
    env,
    vault,
    upstream,
    daemon,
    baseUrl,
    mint: async (input) => (await mintProxyToken(config.vaultDir, input)).token,
    operator: async () => (await createOperatorToken(config.vaultDir, { name: 'test' })).token,
    async close() {
      await daemon.stop();
      vault.close();
      await upstream.close();
    },
  };
}

/**
 * Shared setup for the loopback HTTP listener tests: a real dev vault (file provider, `init --dev`), three
 * credentials (custom `echo` → upstream.test, registry `openai` and `anthropic`), the HTTPS mock upstream
 * playing all three hosts (AIVAULT_DEV_RESOLVE + the throwaway test CA), and a real in-process aivaultd
 * (uWS + piscina + crypto worker) with `--http 127.0.0.1:0`.
 */
import { rmSync } from 'node:fs';
import type { Config } from '../../../src/core/config/env.js';
import {
  toSecretInfo,
  toSecretMeta,
  readSecretRecord,
  vaultPaths,
  type Vault,
} from '../../../src/stores/vault/index.js';
import { catalogPaths, createCredential } from '../../../src/stores/catalog/index.js';
import { registry } from '../../../src/core/registry/index.js';
import { startDaemon, type Daemon, type DaemonOptions } from '../../../src/front/main.js';
import {
  startHttpsUpstream,
  type HttpsUpstream,
  type HttpsUpstreamOptions,
} from '../../support/https-upstream.js';
import { addCustomCredential, createDevVault } from '../../support/dev-vault.js';
import {
  mintProxyToken,
  createOperatorToken,
  type MintProxyInput,
} from '../../../src/stores/tokens/tokens.js';

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
  /** A JSON request to the listener with `authorization: Bearer <token>`. */
  api<T = unknown>(
    token: string,
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; json: T }>;
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
export async function prepareVault(
  extraEnv: Record<string, string> = {},
  upstreamOptions: HttpsUpstreamOptions = {},
): Promise<PreparedVault> {
  const upstream = await startHttpsUpstream(upstreamOptions);
  const dv = await createDevVault({
    prefix: 'aivault-http-',
    upstream: upstream.port,
    hosts: ['upstream.test', 'api.openai.com', 'api.anthropic.com'],
    env: extraEnv,
  });
  await addCustomCredential(dv, {
    id: 'echo',
    secretName: 'ECHO_TOKEN',
    secretValue: ECHO_SECRET,
    capabilities: {
      'echo/api': { methods: ['GET', 'POST'] },
      'echo/special': { methods: ['GET'], pathPrefixes: ['/special'] },
    },
  });
  const paths = catalogPaths(dv.config.vaultDir);
  for (const [provider, name, value] of [
    ['openai', 'OPENAI_API_KEY', OPENAI_SECRET],
    ['anthropic', 'ANTHROPIC_API_KEY', ANTHROPIC_SECRET],
  ] as const) {
    const s = await dv.vault.createSecret({ name, value, scope: { kind: 'global' } });
    const info = toSecretInfo(toSecretMeta(await readSecretRecord(vaultPaths(dv.config), s.id)));
    await createCredential(
      paths,
      registry,
      { id: provider, provider, secretRef: `vault:secret:${s.id}` },
      { secrets: [info] },
    );
  }
  return { home: dv.home, config: dv.config, env: dv.env, vault: dv.vault, upstream };
}

export async function startHttpFixture(
  opts: DaemonOptions & { env?: Record<string, string>; upstream?: HttpsUpstreamOptions } = {},
): Promise<HttpFixture> {
  const { upstream: upstreamOptions, ...daemonOptions } = opts;
  const { home, config, env, vault, upstream } = await prepareVault(opts.env, upstreamOptions);
  const daemon = await startDaemon(config, { workers: 1, http: '127.0.0.1:0', ...daemonOptions });
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
    async api<T>(token: string, method: string, path: string, body?: unknown) {
      const res = await fetch(`${baseUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, json: (await res.json()) as T };
    },
    async close() {
      await daemon.stop();
      vault.close();
      await upstream.close();
      rmSync(home, { recursive: true, force: true });
    },
  };
}

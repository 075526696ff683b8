/**
 * `aivault run [--capability …] [--tunnel-host H] [--no-proxy] -- <command>`: run an unchanged agent/SDK
 * program against the broker. By default the daemon also serves its HTTPS proxy and the child gets
 * HTTPS_PROXY (token as proxy password), the vault CA variables and placeholder keys (run-proxy.ts)
 * instead of SDK base URLs; with --no-proxy it gets the base-URL variables below.
 * Mints a short-lived proxy token, makes sure aivaultd serves the loopback HTTP listener (autostart with
 * `--http`, or a graceful restart of a daemon that runs without it), and runs the command with
 * AIVAULT_BASE_URL + AIVAULT_TOKEN and the standard SDK variables (OPENAI_BASE_URL + OPENAI_API_KEY, …)
 * pointing at `/v/{credential}` passthrough routes, the proxy token in place of every key. The child's
 * environment has no AIVAULT_* / AIVAULTD_* variable, no key-provider variable and no variable named like
 * a vault secret; the token is revoked when the command exits.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { AivaultError } from '../../core/errors.js';
import type { Config } from '../../core/config/env.js';
import type { Credential } from '../../core/broker/types.js';
import type { CliContext, CommandOptions, CommandResult } from '../context.js';
import { optList, optString } from '../context.js';
import { connectDaemon, startDaemon } from '../daemon-link.js';
import { stopDaemon } from './daemon.js';
import { loadBrokerView } from './broker-view.js';
import { checkScope, mintInputFromFlags } from './token.js';
import { readJsonFile } from '../../stores/vault/store.js';
import { vaultPaths } from '../../stores/vault/paths.js';
import { DEFAULT_HTTP_PORT } from '../../front/http-passthrough.js';
import { vaultTag } from '../../front/vault-tag.js';
import { caCertPath } from '../../front/https-proxy/paths.js';
import { currentProxy, preloadPath, proxyEnv, writeCaBundle, type ProxyInfo } from '../run-proxy.js';

/** Standard SDK variables per provider: base URL (relative to `/v/{credential}`) and key variable. */
export const SDK_ENV: Readonly<
  Record<string, { readonly base: string; readonly baseSuffix: string; readonly key: string }>
> = Object.freeze({
  openai: { base: 'OPENAI_BASE_URL', baseSuffix: '/v1', key: 'OPENAI_API_KEY' },
  anthropic: { base: 'ANTHROPIC_BASE_URL', baseSuffix: '', key: 'ANTHROPIC_API_KEY' },
  groq: { base: 'GROQ_BASE_URL', baseSuffix: '', key: 'GROQ_API_KEY' },
});

interface HttpInfo {
  host: string;
  port: number;
}

function baseUrlOf(info: HttpInfo): string {
  return `http://${info.host.includes(':') ? `[${info.host}]` : info.host}:${info.port}`;
}

/** The running daemon's HTTP listener, if it serves THIS vault. */
async function currentHttp(config: Config): Promise<HttpInfo | undefined> {
  const raw = (await readJsonFile(join(dirname(config.socketPath), 'aivaultd.http.json')).catch(
    () => undefined,
  )) as Partial<HttpInfo> | undefined;
  if (!raw || typeof raw.host !== 'string' || typeof raw.port !== 'number') return undefined;
  const info = {
    host: raw.host === '0.0.0.0' ? '127.0.0.1' : raw.host === '::' ? '::1' : raw.host,
    port: raw.port,
  };
  try {
    const res = await fetch(`${baseUrlOf(info)}/aivault/health`, { signal: AbortSignal.timeout(2000) });
    const body = (await res.json()) as { vault?: string };
    return body.vault === vaultTag(config.vaultDir) ? info : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Make sure aivaultd runs with the HTTP listener (and, with `proxy`, the HTTPS proxy); returns their
 * addresses. A daemon that lacks one is restarted gracefully with both.
 */
export async function ensureHttpListener(
  ctx: CliContext,
  want: { proxy?: boolean; unlock?: () => Promise<unknown> } = {},
): Promise<{ http: HttpInfo; proxy: ProxyInfo | undefined }> {
  const config = ctx.config;
  const current = async (): Promise<{ http: HttpInfo; proxy: ProxyInfo | undefined } | undefined> => {
    const http = await currentHttp(config);
    const proxy = want.proxy ? await currentProxy(config) : undefined;
    return http && (!want.proxy || proxy) ? { http, proxy } : undefined;
  };
  const existing = await current();
  if (existing) return existing;
  const http = config.httpListen ?? `127.0.0.1:${DEFAULT_HTTP_PORT}`;
  // Port 0 by default: the daemon reports the port it got, and a fixed port could be taken.
  const httpsProxy = want.proxy ? (config.httpsProxyListen ?? '127.0.0.1:0') : undefined;
  let client;
  try {
    client = await connectDaemon(config, { autostart: false });
  } catch {
    client = undefined;
  }
  if (client) {
    // Running without a listener: a graceful restart (in-flight calls finish first) with both flags.
    client.close();
    ctx.stderr.write(
      `aivault run: restarting aivaultd with the loopback HTTP listener${want.proxy ? ' and the HTTPS proxy' : ''}\n`,
    );
    await stopDaemon(config.socketPath);
  } else if (!config.daemonAutostart) {
    throw new AivaultError(
      'daemon_unavailable',
      'aivaultd is not running and autostart is off (AIVAULTD_AUTOSTART=0)',
    );
  }
  (await startDaemon(config, { http, ...(httpsProxy !== undefined ? { httpsProxy } : {}) })).close();
  // A restarted daemon holds no passphrase: unlock it again when the caller proved it (else it stays
  // locked, every call fails with vault_unavailable, and the proxy cannot make its CA).
  if (client && want.unlock) await want.unlock();
  for (let i = 0; i < 100; i++) {
    const info = await current();
    if (info) return info;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new AivaultError(
    'daemon_unavailable',
    `aivaultd did not open its HTTP listener on ${http}${httpsProxy !== undefined ? ` or its HTTPS proxy on ${httpsProxy} (is the vault locked?)` : ''} (port in use? see ${join(dirname(config.socketPath), 'aivaultd.log')})`,
  );
}

/** The key-provider variable of an env-provider vault (it holds the KEK). */
async function keyProviderVar(config: Config): Promise<string | undefined> {
  const meta = (await readJsonFile(vaultPaths(config).vaultJson).catch(() => undefined)) as
    { provider?: { kind?: string; envVar?: string } } | undefined;
  return meta?.provider?.kind === 'env' ? meta.provider.envVar : undefined;
}

/**
 * The child's environment: the parent's, minus everything that could reach a key, plus the broker
 * variables. Pure apart from its inputs.
 */
export function childEnv(input: {
  parent: NodeJS.ProcessEnv;
  dropNames: ReadonlySet<string>;
  baseUrl: string;
  token: string;
  credentials: readonly { id: string; provider: string }[];
}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.parent)) {
    if (v === undefined) continue;
    if (k.startsWith('AIVAULT') || input.dropNames.has(k) || input.dropNames.has(k.toUpperCase())) continue;
    env[k] = v;
  }
  env.AIVAULT_BASE_URL = input.baseUrl;
  env.AIVAULT_TOKEN = input.token;
  const seen = new Set<string>();
  for (const c of input.credentials) {
    const sdk = SDK_ENV[c.provider];
    if (!sdk || seen.has(c.provider)) continue;
    seen.add(c.provider);
    env[sdk.base] = `${input.baseUrl}/v/${encodeURIComponent(c.id)}${sdk.baseSuffix}`;
    env[sdk.key] = input.token;
  }
  return env;
}

/** The token's capabilities (default: every provider with a credential), checked against the catalog. */
async function scopeOf(
  ctx: CliContext,
  opts: CommandOptions,
): Promise<{
  view: Awaited<ReturnType<typeof loadBrokerView>>;
  credentials: Credential[];
  capabilities: string[];
}> {
  const view = await loadBrokerView(ctx.config);
  const pinned = optString(opts, 'credential');
  const credentials = [...view.snapshot.credentials.values()]
    .filter((c) => pinned === undefined || c.id === pinned)
    .sort((a, b) => a.id.localeCompare(b.id));
  let capabilities = optList(opts, 'capability');
  if (capabilities.length === 0) {
    // Default scope: every provider that has a credential.
    capabilities = [...new Set(credentials.map((c) => `${c.provider}/*`))];
    if (capabilities.length === 0) {
      throw new AivaultError(
        'usage',
        'no credentials yet: store a key (aivault secrets create …) or pass --capability',
      );
    }
  }
  const input = mintInputFromFlags({ ...opts, ttl: optString(opts, 'ttl') ?? '15m' }, capabilities);
  await checkScope(ctx, input);
  return { view, credentials, capabilities };
}

export async function run(
  ctx: CliContext,
  pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const command = (pos as readonly (string | string[])[]).flat();
  if (command.length === 0)
    throw new AivaultError('usage', 'usage: aivault run [--capability …] -- <command> [args…]');
  // --no-proxy (commander sets proxy: false) keeps the base-URL-only behaviour.
  const useProxy = opts.proxy !== false;
  const tunnelHosts = optList(opts, 'tunnelHost').map((h) => h.toLowerCase());
  if (tunnelHosts.length > 0 && !useProxy) {
    throw new AivaultError('usage', '--tunnel-host needs the HTTPS proxy (drop --no-proxy)');
  }
  // Minting and revoking are operator actions: they go through the same router as `token mint` (the
  // daemon runs them; a passphrase vault needs the passphrase), never straight to the token file.
  const { runCommand, operatorPassphrase, openWithPassphrase } = await import('../router.js');
  const passphrase = await operatorPassphrase(ctx, opts);
  // A sealed vault's policy files are read with the key (stores/vault/policy-seal.ts): while this vault is open
  // with the passphrase, it verifies them for the broker view and the scope check.
  const keyHolder =
    passphrase !== undefined ? await openWithPassphrase(ctx, 'token.mint', passphrase) : undefined;
  let scope: Awaited<ReturnType<typeof scopeOf>>;
  try {
    scope = await scopeOf(ctx, opts);
  } finally {
    keyHolder?.close();
  }
  const { view, credentials, capabilities } = scope;

  const auth = passphrase !== undefined ? { passphrase } : {};
  const minted = await runCommand(ctx, 'token', 'mint', [], {
    ...Object.fromEntries(
      ['credential', 'workspaceId', 'groupId'].flatMap((k) =>
        optString(opts, k) !== undefined ? [[k, optString(opts, k)]] : [],
      ),
    ),
    capability: capabilities,
    ...(tunnelHosts.length > 0 ? { tunnelHost: tunnelHosts } : {}),
    ttl: optString(opts, 'ttl') ?? '15m',
    label: 'aivault run',
    ...auth,
  });
  const {
    token,
    id: tokenId,
    expiresAtMs,
  } = minted?.json as { token: string; id: string; expiresAtMs: number };
  const info = { id: tokenId, expiresAtMs };
  // A token that could not be revoked stays valid until it expires: say so, with the command to retry.
  // (not_found means it is already gone, e.g. the command revoked it itself.)
  const revoke = (): Promise<string | undefined> =>
    runCommand(ctx, 'token', 'revoke', [info.id], auth).then(
      () => undefined,
      (err: unknown) =>
        err instanceof AivaultError && err.code === 'not_found'
          ? undefined
          : err instanceof Error
            ? err.message
            : String(err),
    );
  let listeners: Awaited<ReturnType<typeof ensureHttpListener>>;
  let bundle: Awaited<ReturnType<typeof writeCaBundle>> | undefined;
  try {
    listeners = await ensureHttpListener(ctx, {
      proxy: useProxy,
      ...(passphrase !== undefined
        ? { unlock: async () => (await import('./vault.js')).unlock(ctx, [], { passphrase }) }
        : {}),
    });
    if (listeners.proxy) bundle = await writeCaBundle(listeners.proxy.ca, process.env.SSL_CERT_FILE);
  } catch (err) {
    await revoke();
    throw err;
  }
  const http = listeners.http;
  const dropNames = new Set<string>();
  const envVar = await keyProviderVar(ctx.config);
  if (envVar) dropNames.add(envVar);
  for (const s of view.secrets) dropNames.add(s.name);
  for (const p of view.registry.providers)
    for (const name of Object.keys(p.vaultSecrets)) dropNames.add(name);
  const granted = credentials.filter((c) =>
    capabilities.some(
      (cap) => cap === `${c.provider}/*` || view.registry.getCapability(cap)?.provider === c.provider,
    ),
  );
  const env = childEnv({
    parent: process.env,
    dropNames,
    baseUrl: baseUrlOf(http),
    token,
    // Proxy mode: SDKs reach their real hosts through the proxy (with placeholder keys), no base URL swap.
    credentials: listeners.proxy ? [] : granted,
  });
  if (listeners.proxy && bundle) {
    const keyVars = new Map<string, string[]>();
    for (const c of granted) {
      const names = Object.keys(view.registry.getProvider(c.provider)?.vaultSecrets ?? {});
      if (names.length > 0) keyVars.set(c.provider, names);
    }
    Object.assign(
      env,
      proxyEnv({
        proxy: listeners.proxy,
        token,
        bundlePath: bundle.path,
        preload: preloadPath(),
        parentNodeOptions: env.NODE_OPTIONS,
        keyVars,
      }),
    );
  }

  const child = spawn(command[0] as string, command.slice(1), { stdio: 'inherit', env });
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  const code = await new Promise<number>((resolve) => {
    child.once('error', (err) => {
      ctx.stderr.write(
        `aivault run: cannot start ${command[0]}: ${(err as NodeJS.ErrnoException).code ?? 'error'}\n`,
      );
      resolve(127);
    });
    child.once('exit', (c, sig) => resolve(c ?? (sig ? 128 + 1 : 1)));
  });
  process.off('SIGINT', onInt);
  process.off('SIGTERM', onTerm);
  const revokeError = await revoke();
  await bundle?.remove();
  return {
    json: { exitCode: code, token: info.id, ...(revokeError !== undefined ? { revokeError } : {}) },
    human: () => '',
    silent: true,
    ...(code !== 0 ? { exitCode: code } : {}),
    ...(revokeError !== undefined
      ? {
          notice: `warning: proxy token ${info.id} was not revoked (${revokeError}); it stays valid until ${new Date(info.expiresAtMs).toISOString()} unless you run: aivault token revoke ${info.id}`,
        }
      : {}),
  };
}

/** `aivault ca path`: the vault CA's public cert that clients of the HTTPS proxy trust. */
export async function caPath(ctx: CliContext): Promise<CommandResult> {
  const path = caCertPath(ctx.config.vaultDir);
  const exists = await import('node:fs/promises').then((f) =>
    f.access(path).then(
      () => true,
      () => false,
    ),
  );
  return {
    json: { path, exists },
    human: (p) =>
      exists
        ? path
        : `${path}\n${p.dim('(created the first time aivaultd serves the HTTPS proxy, e.g. by aivault run)')}`,
  };
}

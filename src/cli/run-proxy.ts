/**
 * The HTTPS-proxy half of `aivault run` (CLI process): find the daemon's proxy (aivaultd.https-proxy.json,
 * confirmed by its /aivault/health), write the CA bundle the child trusts (system roots + the vault CA, in
 * a private temp dir removed when the child exits), and build the proxy variables: HTTPS_PROXY with the
 * proxy token, NO_PROXY, the CA variables common clients read, the Node preload (proxy-preload.ts) and
 * placeholder keys. The child's environment still holds no secret: a placeholder is replaced by the proxy,
 * and only for its own provider's host.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { rootCertificates } from 'node:tls';
import { fileURLToPath } from 'node:url';
import type { Config } from '../core/config/env.js';
import { readJsonFile } from '../stores/vault/store.js';
import { HTTPS_PROXY_INFO_FILE } from '../front/https-proxy/paths.js';
import { vaultTag } from '../front/vault-tag.js';
import { PROXY_USER, placeholderValue } from '../front/https-proxy/connect.js';

export interface ProxyInfo {
  readonly host: string;
  readonly port: number;
  /** The vault CA's public cert. */
  readonly ca: string;
}

/** The running daemon's HTTPS proxy, if it serves THIS vault and its CA cert exists. */
export async function currentProxy(config: Config): Promise<ProxyInfo | undefined> {
  const raw = (await readJsonFile(join(dirname(config.socketPath), HTTPS_PROXY_INFO_FILE)).catch(
    () => undefined,
  )) as Partial<ProxyInfo> | undefined;
  if (!raw || typeof raw.host !== 'string' || typeof raw.port !== 'number' || typeof raw.ca !== 'string')
    return undefined;
  const host = raw.host === '0.0.0.0' ? '127.0.0.1' : raw.host === '::' ? '::1' : raw.host;
  try {
    const res = await fetch(`http://${hostPart(host)}:${raw.port}/aivault/health`, {
      signal: AbortSignal.timeout(2000),
    });
    const body = (await res.json()) as { vault?: string; httpsProxy?: boolean };
    if (body.vault !== vaultTag(config.vaultDir) || body.httpsProxy !== true) return undefined;
  } catch {
    return undefined;
  }
  return existsSync(raw.ca) ? { host, port: raw.port, ca: raw.ca } : undefined;
}

function hostPart(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

/** System trust stores, first found wins (Debian/Ubuntu, Fedora/RHEL, Alpine/macOS-Homebrew/BSD). */
const SYSTEM_BUNDLES = [
  '/etc/ssl/certs/ca-certificates.crt',
  '/etc/pki/tls/certs/ca-bundle.crt',
  '/etc/ssl/cert.pem',
];

/**
 * Write `<private temp dir>/ca-bundle.pem`: the roots the child trusted before (its SSL_CERT_FILE, else
 * the system bundle, else Node's built-in Mozilla roots) plus the vault CA. Returns the path and a cleanup.
 */
export async function writeCaBundle(
  caPath: string,
  parentCertFile: string | undefined,
): Promise<{ path: string; remove: () => Promise<void> }> {
  let roots: string | undefined;
  for (const p of [parentCertFile, ...SYSTEM_BUNDLES]) {
    if (!p) continue;
    roots = await fsp.readFile(p, 'utf8').catch(() => undefined);
    if (roots !== undefined) break;
  }
  roots ??= rootCertificates.join('\n');
  const vaultCa = await fsp.readFile(caPath, 'utf8');
  const dir = await fsp.mkdtemp(join(tmpdir(), 'aivault-run-'));
  const path = join(dir, 'ca-bundle.pem');
  await fsp.writeFile(path, `${roots.trimEnd()}\n${vaultCa.trimEnd()}\n`, { mode: 0o600 });
  return { path, remove: () => fsp.rm(dir, { recursive: true, force: true }) };
}

/** The compiled preload next to the CLI (dist/src/cli/proxy-preload.js), if present. */
export function preloadPath(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const candidate of [join(here, '..', 'cli', 'proxy-preload.js'), join(here, 'proxy-preload.js')]) {
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

/**
 * The proxy variables for the child (pure apart from randomness): HTTPS_PROXY/https_proxy with the token
 * as the proxy password, NO_PROXY for loopback, the CA variables, NODE_USE_ENV_PROXY + the Node preload,
 * and a placeholder for every key variable of the granted providers (`keyVars`: provider → names).
 */
export function proxyEnv(input: {
  proxy: ProxyInfo;
  token: string;
  bundlePath: string;
  preload: string | undefined;
  parentNodeOptions: string | undefined;
  keyVars: ReadonlyMap<string, readonly string[]>;
}): Record<string, string> {
  const url = `http://${PROXY_USER}:${encodeURIComponent(input.token)}@${hostPart(input.proxy.host)}:${input.proxy.port}`;
  const env: Record<string, string> = {
    HTTPS_PROXY: url,
    https_proxy: url,
    NO_PROXY: 'localhost,127.0.0.1,::1',
    no_proxy: 'localhost,127.0.0.1,::1',
    SSL_CERT_FILE: input.bundlePath,
    REQUESTS_CA_BUNDLE: input.bundlePath,
    CURL_CA_BUNDLE: input.bundlePath,
    GIT_SSL_CAINFO: input.bundlePath,
    NODE_EXTRA_CA_CERTS: input.proxy.ca,
    NODE_USE_ENV_PROXY: '1',
  };
  if (input.preload) {
    // Quoted: NODE_OPTIONS splits on spaces, and a temp or install path may contain one.
    const flag = `--import "${input.preload.replace(/(["\\])/g, '\\$1')}"`;
    env.NODE_OPTIONS = input.parentNodeOptions ? `${input.parentNodeOptions} ${flag}` : flag;
  }
  for (const [provider, names] of input.keyVars) {
    const value = placeholderValue(provider, randomBytes(16).toString('hex'));
    for (const name of names) env[name] = value;
  }
  return env;
}

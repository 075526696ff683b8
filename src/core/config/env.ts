/**
 * The only module that reads process.env. Everything else takes a frozen `Config`.
 * Dev overrides (AIVAULT_DEV_*) are parsed here but are only *requested*: the vault decides whether they
 * are honoured (only a vault created with `init --dev`, whose dev flag is MAC-authenticated by the KEK).
 *
 * Variables:
 *   AIVAULT_DIR                       vault root (default ~/.aivault/data/vault)
 *   AIVAULT_KEY                       base64 KEK for the env provider (name overridable with --env-var)
 *   AIVAULT_DISABLE_DISK_LOGS=1       no audit files are written
 *   AIVAULT_AUDIT_RETENTION_DAYS      number of day files kept (default 30)
 *   AIVAULTD_DISABLE=1                run invocations in-process instead of through aivaultd
 *   AIVAULTD_AUTOSTART=0              never start aivaultd automatically
 *   AIVAULTD_SOCKET                   socket path override
 *   AIVAULTD_SOCKET_MODE              octal socket mode (default 0600)
 *   AIVAULTD_SOCKET_DIR_MODE          octal socket dir mode (default 0700)
 *   AIVAULTD_WORKERS                  request worker count (default: cores)
 *   AIVAULTD_HTTP                     host:port of the loopback HTTP listener (off when unset)
 *   AIVAULTD_HTTP_ALLOW_REMOTE=1      accept non-loopback peers on the HTTP listener (off by default)
 *   AIVAULT_FLEET_REDIS, AIVAULT_FLEET_ID, AIVAULT_FLEET_FAIL_OPEN, AIVAULT_FLEET_AUDIT_POSTGRES,
 *   AIVAULT_FLEET_NODE                fleet mode (docs/fleet.md; aivaultd flags override them)
 *   AIVAULT_DEV_RESOLVE               host=ip:port,…  (dev vaults only)
 *   AIVAULT_DEV_CA_CERT_PATH          extra PEM CA (dev vaults only)
 *   AIVAULT_DEV_ALLOW_NON_DEFAULT_PORTS=1   (dev vaults only)
 *   AIVAULT_DEV_HTTP1_ONLY=1          (dev vaults only)
 *   AIVAULT_DEV_CODEX_OAUTH_TOKEN_ENDPOINT  https URL replacing the Codex OAuth token endpoint (dev vaults only)
 *   AIVAULT_SYSTEM_CONFIG             system-mode layout file (default /etc/aivault/system.json)
 *   NO_COLOR                          plain output
 */
import type { TestIntervals } from './test-intervals.js';
import { homedir, availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { AivaultError } from '../errors.js';
import { parseFleetSettings, type FleetSettings } from '../../stores/fleet/config.js';
import { DEFAULT_SYSTEM_CONFIG, readSystemLayout, systemSocketFor, type SystemLayout } from './system.js';

export interface DevOverrides {
  /** host → { address, port } */
  readonly resolve: ReadonlyMap<string, { readonly address: string; readonly port: number }>;
  readonly caCertPath: string | undefined;
  readonly allowNonDefaultPorts: boolean;
  readonly http1Only: boolean;
  /**
   * AIVAULT_DEV_CODEX_OAUTH_TOKEN_ENDPOINT: where the Codex (ChatGPT login) OAuth refresh goes instead of
   * auth.openai.com (tests against a local token endpoint; must still be https).
   */
  readonly codexOAuthTokenEndpoint?: string;
}

export interface Config {
  readonly homeDir: string;
  /** Vault root directory. */
  readonly vaultDir: string;
  /** True when AIVAULT_DIR was set (changes default key file and socket locations). */
  readonly vaultDirFromEnv: boolean;
  /** Default key file for the file provider. */
  readonly defaultKeyFile: string;
  readonly socketPath: string;
  readonly socketMode: number;
  readonly socketDirMode: number;
  readonly disableDiskLogs: boolean;
  readonly auditRetentionDays: number;
  readonly daemonDisable: boolean;
  readonly daemonAutostart: boolean;
  readonly requestWorkers: number;
  /** `host:port` for the loopback HTTP listener (AIVAULTD_HTTP), unset = no listener. */
  readonly httpListen: string | undefined;
  /** `host:port` for the HTTPS (CONNECT) proxy listener (AIVAULTD_HTTPS_PROXY), unset = none. */
  readonly httpsProxyListen: string | undefined;
  /** `host:port` for the token-free, scrape-only loopback metrics listener (AIVAULTD_METRICS_OPEN). */
  readonly metricsOpenListen: string | undefined;
  /** Accept non-loopback peers on the HTTP listener (AIVAULTD_HTTP_ALLOW_REMOTE=1). */
  readonly httpAllowRemote: boolean;
  /** Fleet mode (src/stores/fleet/config.ts): shared rate limits on Redis, central audit on PostgreSQL. */
  readonly fleet?: FleetSettings;
  readonly noColor: boolean;
  /** Requested dev overrides; honoured only by a verified dev vault. */
  readonly devRequested: DevOverrides;
  /** Reads one named variable (for the env key provider's `--env-var NAME`). */
  readonly readVar: (name: string) => string | undefined;
  /**
   * System mode (core/config/system.ts), when installed and AIVAULT_DIR is unset: the CLI then goes through
   * the daemon for everything, on the operator socket when it may open it, else as a caller.
   */
  readonly system: { readonly layout: SystemLayout; readonly role: 'operator' | 'caller' } | undefined;
  /** Shortened daemon intervals: set only by startDaemon's `testing` option, never by loadConfig. */
  readonly testing?: TestIntervals;
}

export type Env = Readonly<Record<string, string | undefined>>;

function flag(value: string | undefined): boolean {
  return value === '1' || value === 'true' || value === 'yes';
}

function parseMode(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  if (!/^0?[0-7]{3}$/.test(value)) {
    throw new AivaultError('usage', `${name} must be an octal mode such as 0600`);
  }
  return parseInt(value, 8);
}

function parsePositiveInt(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new AivaultError('usage', `${name} must be a positive integer`);
  return n;
}

export function parseDevResolve(value: string | undefined): Map<string, { address: string; port: number }> {
  const map = new Map<string, { address: string; port: number }>();
  if (!value) return map;
  for (const part of value.split(',')) {
    const entry = part.trim();
    if (!entry) continue;
    const eq = entry.indexOf('=');
    const target = entry.slice(eq + 1);
    const colon = target.lastIndexOf(':');
    const host = entry.slice(0, eq).trim().toLowerCase();
    let address = target.slice(0, colon).trim();
    if (address.startsWith('[') && address.endsWith(']')) address = address.slice(1, -1);
    const port = Number(target.slice(colon + 1));
    if (eq <= 0 || colon <= 0 || !host || !address || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new AivaultError('usage', 'AIVAULT_DEV_RESOLVE entries must look like host=ip:port');
    }
    map.set(host, { address, port });
  }
  return map;
}

export function loadConfig(env: Env = process.env): Config {
  const homeDir = env.HOME && env.HOME !== '' ? env.HOME : homedir();
  const vaultDirFromEnv = Boolean(env.AIVAULT_DIR);
  // AIVAULT_SYSTEM_CONFIG only moves where the layout is read from (tests install under a temp root);
  // it grants nothing: the sockets' owners and modes decide who may do what.
  const layout = vaultDirFromEnv
    ? undefined
    : readSystemLayout(
        env.AIVAULT_SYSTEM_CONFIG ? resolve(env.AIVAULT_SYSTEM_CONFIG) : DEFAULT_SYSTEM_CONFIG,
      );
  const systemSocket = layout ? systemSocketFor(layout) : undefined;
  const vaultDir = vaultDirFromEnv
    ? resolve(env.AIVAULT_DIR as string)
    : layout
      ? layout.vaultDir
      : join(homeDir, '.aivault', 'data', 'vault');
  const defaultKeyFile =
    vaultDirFromEnv || layout ? join(vaultDir, 'kek.key') : join(homeDir, '.aivault', 'keys', 'kek.key');
  const socketPath = env.AIVAULTD_SOCKET
    ? resolve(env.AIVAULTD_SOCKET)
    : systemSocket
      ? systemSocket.socketPath
      : vaultDirFromEnv
        ? join(vaultDir, 'run', 'aivaultd.sock')
        : join(homeDir, '.aivault', 'run', 'aivaultd.sock');
  const snapshot: Env = Object.freeze({ ...env });
  const devRequested: DevOverrides = Object.freeze({
    resolve: parseDevResolve(env.AIVAULT_DEV_RESOLVE),
    caCertPath: env.AIVAULT_DEV_CA_CERT_PATH ? resolve(env.AIVAULT_DEV_CA_CERT_PATH) : undefined,
    allowNonDefaultPorts: flag(env.AIVAULT_DEV_ALLOW_NON_DEFAULT_PORTS),
    http1Only: flag(env.AIVAULT_DEV_HTTP1_ONLY),
    ...(env.AIVAULT_DEV_CODEX_OAUTH_TOKEN_ENDPOINT
      ? { codexOAuthTokenEndpoint: env.AIVAULT_DEV_CODEX_OAUTH_TOKEN_ENDPOINT.trim() }
      : {}),
  });
  return Object.freeze({
    homeDir,
    vaultDir,
    vaultDirFromEnv,
    defaultKeyFile,
    socketPath,
    socketMode: parseMode('AIVAULTD_SOCKET_MODE', env.AIVAULTD_SOCKET_MODE, 0o600),
    socketDirMode: parseMode('AIVAULTD_SOCKET_DIR_MODE', env.AIVAULTD_SOCKET_DIR_MODE, 0o700),
    disableDiskLogs: flag(env.AIVAULT_DISABLE_DISK_LOGS),
    auditRetentionDays: parsePositiveInt(
      'AIVAULT_AUDIT_RETENTION_DAYS',
      env.AIVAULT_AUDIT_RETENTION_DAYS,
      30,
    ),
    daemonDisable: flag(env.AIVAULTD_DISABLE),
    daemonAutostart: env.AIVAULTD_AUTOSTART !== '0' && env.AIVAULTD_AUTOSTART !== 'false',
    requestWorkers: parsePositiveInt('AIVAULTD_WORKERS', env.AIVAULTD_WORKERS, availableParallelism()),
    httpListen: env.AIVAULTD_HTTP ? env.AIVAULTD_HTTP : undefined,
    httpsProxyListen: env.AIVAULTD_HTTPS_PROXY ? env.AIVAULTD_HTTPS_PROXY : undefined,
    metricsOpenListen: env.AIVAULTD_METRICS_OPEN ? env.AIVAULTD_METRICS_OPEN : undefined,
    httpAllowRemote: flag(env.AIVAULTD_HTTP_ALLOW_REMOTE),
    fleet: parseFleetSettings(env),
    noColor: env.NO_COLOR !== undefined && env.NO_COLOR !== '',
    devRequested,
    readVar: (name: string) => snapshot[name],
    system: layout && systemSocket ? Object.freeze({ layout, role: systemSocket.role }) : undefined,
  });
}

/** True when any dev override was requested (status shows whether it is honoured). */
export function hasDevRequests(dev: DevOverrides): boolean {
  return dev.resolve.size > 0 || dev.caCertPath !== undefined || dev.allowNonDefaultPorts || dev.http1Only;
}

/** Used before a Config exists (e.g. to colour an error from loadConfig itself). */
export function noColorRequested(env: Env = process.env): boolean {
  return env.NO_COLOR !== undefined && env.NO_COLOR !== '';
}

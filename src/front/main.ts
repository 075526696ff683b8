#!/usr/bin/env node
/**
 * aivaultd: the broker daemon. Flags → options, pid file, signals, graceful shutdown. Also exports
 * `startDaemon(config, opts)` for in-process tests. Never prints a secret (nothing secret reaches this
 * thread: the KEK lives only in the crypto worker, values only in request workers).
 *
 * Core dumps: at start-up the daemon sets its own RLIMIT_CORE to 0 (soft and hard) through prlimit
 * (core-limit.ts); where that is unavailable it says so on stderr and operators should use `ulimit -c 0`
 * (or LimitCORE=0). Independently, the KEK lives in sodium_malloc memory (mlock'ed, guard pages, no-access
 * while idle, MADV_DONTDUMP where supported), secret buffers are zeroed after use, and nothing is logged.
 *
 * Not dumpable: on Linux the daemon sets prctl(PR_SET_DUMPABLE, 0) before anything else (dumpable.ts), so
 * same-user processes cannot read its memory through /proc/<pid>/mem or ptrace. It refuses to start when
 * that addon is missing rather than run readable.
 */
import { promises as fsp, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs as parseNodeArgs } from 'node:util';
import { loadConfig, type Config } from '../core/config/env.js';
import { AivaultError, isAivaultError } from '../core/errors.js';
import type { TestIntervals } from '../core/config/test-intervals.js';
import { DaemonPool } from '../pool/daemon-pool.js';
import { applyDaemonV8Flags } from '../pool/gc-tuning.js';
import { startSocketServer, type SocketServer } from './socket-server.js';
import type { HttpServer } from './http-server.js';
import { isLoopbackHost, parseListenAddress } from './http-passthrough.js';
import { disableCoreDumps } from './core-limit.js';
import { readSystemLayout, type SystemLayout } from '../core/config/system.js';
import { disableDumpable } from './dumpable.js';
import { writeRunFile } from './run-dir.js';
import { setPolicySealSource } from '../stores/vault/policy-seal.js';
import {
  CRYPTO_WORKER_YOUNG_MB,
  DEFAULT_WORKER_HEAP_MB,
  DEFAULT_WORKER_YOUNG_MB,
  workerResourceLimits,
} from '../pool/worker-limits.js';
import { startVaultWatcher } from './vault-watcher.js';
import { vaultPaths } from '../stores/vault/paths.js';
import { useTestLockStaleness } from '../stores/vault/store.js';
import type { HttpsProxyServer } from './https-proxy/server.js';
import { HTTPS_PROXY_INFO_FILE } from './https-proxy/paths.js';
import { vaultTag } from './vault-tag.js';
import { parseFleetSettings, type FleetOverrides } from '../stores/fleet/config.js';
import { startFleet } from '../stores/fleet/daemon.js';
import { AuditLog } from '../stores/audit/audit-log.js';
import { auditApprovals } from './approval-ops.js';
import { DashboardAuth } from './dashboard/session.js';
import { createDaemonMetrics, type DaemonMetrics } from './metrics.js';
import { startMetricsListener, type MetricsListener } from './metrics-listener.js';
import { createCatalogCache } from '../stores/catalog/cache.js';
import type { BrokerSnapshot } from '../core/broker/types.js';

/** Linux shared-daemon socket (`--shared`); macOS uses /Users/Shared/aivault/run. */
export const SHARED_SOCKET_PATH =
  process.platform === 'darwin'
    ? '/Users/Shared/aivault/run/aivaultd.sock'
    : '/var/run/aivault/aivaultd.sock';

export interface DaemonOptions {
  /** Socket path override (else config.socketPath, or the shared path with `shared`). */
  readonly socketPath?: string;
  /** Serve one connection, then shut down. */
  readonly once?: boolean;
  /** Group-shared socket: mode 0660, dir 0770 (and the shared path unless `socketPath` is given). */
  readonly shared?: boolean;
  readonly workers?: number;
  /** Grace period for in-flight calls on shutdown. */
  readonly shutdownDeadlineMs?: number;
  readonly maxInflightPerConnection?: number;
  /** Write a pid file next to the socket (default true). */
  readonly pidFile?: boolean;
  /** `host:port` for the loopback HTTP listener (else config.httpListen; unset = none). */
  readonly http?: string;
  /** `host:port` for the HTTPS (CONNECT) proxy (else config.httpsProxyListen; unset = none). */
  readonly httpsProxy?: string;
  /**
   * `host:port` (loopback only) for a scrape-only listener serving GET /metrics WITHOUT a token (else
   * config.metricsOpenListen; unset = none). The HTTP listener's /metrics always needs an operator token.
   */
  readonly metricsOpen?: string;
  /** Accept non-loopback peers on the HTTP listener and the HTTPS proxy (else config.httpAllowRemote). */
  readonly httpAllowRemote?: boolean;
  /**
   * System mode (`--system-config`): serve the layout's operator socket (0600: root and the daemon user)
   * and its caller socket (0660, the group: invoke and metadata only) instead of one owner socket.
   */
  readonly system?: SystemLayout;
  /**
   * Shortened intervals (OAuth backoff, token re-check, vault watcher, lock staleness). In-process tests only: the one
   * test-only path; no flag or env var sets it (core/config/test-intervals.ts).
   */
  readonly testing?: TestIntervals;
  /** Fleet flags (--fleet-*), over the AIVAULT_FLEET_* settings in config (docs/fleet.md). */
  readonly fleet?: FleetOverrides;
  /** How long a call waits for an operator's approval (`--approval-timeout`, default 60 s). */
  readonly approvalTimeoutMs?: number;
}

export interface Daemon {
  readonly socketPath: string;
  readonly pool: DaemonPool;
  readonly server: SocketServer;
  /** The loopback HTTP listener, when enabled. */
  readonly http: HttpServer | undefined;
  /** The HTTPS (CONNECT) proxy, when enabled. */
  readonly httpsProxy: HttpsProxyServer | undefined;
  /** The token-free metrics listener (`--metrics-open`), when enabled. */
  readonly metricsOpen: MetricsListener | undefined;
  /** Resolves when the daemon has fully stopped. */
  readonly stopped: Promise<void>;
  stop(): Promise<void>;
}

/**
 * The catalog for /metrics labels, made on the first scrape: the registry it merges is ~3 MB of heap this
 * thread would otherwise hold in every daemon, scraped or not (issue 12, idle RSS).
 */
function lazyCatalog(config: Config, pool: DaemonPool): () => Promise<BrokerSnapshot> {
  let cache: Promise<() => Promise<BrokerSnapshot>> | undefined;
  return async () => {
    cache ??= import('../core/registry/index.js').then(({ registry }) =>
      createCatalogCache(vaultPaths(config), registry, pool.generation),
    );
    return (await cache)();
  };
}

export async function startDaemon(baseConfig: Config, opts: DaemonOptions = {}): Promise<Daemon> {
  // Before the pool starts a worker: V8 flags are per process and read when an isolate allocates.
  applyDaemonV8Flags();
  // Fleet flags override the environment's settings; workers get the merged config in workerData.
  const fleetConfig: Config = opts.fleet
    ? Object.freeze({ ...baseConfig, fleet: parseFleetSettings({}, { ...baseConfig.fleet, ...opts.fleet }) })
    : baseConfig;
  const testing = opts.testing;
  const config: Config = testing ? Object.freeze({ ...fleetConfig, testing }) : fleetConfig;
  // This thread's token writes take the vault lock: its test-only staleness (cleared without `testing`).
  useTestLockStaleness(config);
  const system = opts.system;
  const socketPath = system
    ? system.operatorSocket
    : (opts.socketPath ?? (opts.shared ? SHARED_SOCKET_PATH : config.socketPath));
  const socketMode = opts.shared ? 0o660 : config.socketMode;
  const socketDirMode = opts.shared ? 0o770 : config.socketDirMode;
  const httpSpec = opts.http ?? config.httpListen;
  const allowRemote = opts.httpAllowRemote ?? config.httpAllowRemote;
  const httpAddr = httpSpec !== undefined ? parseListenAddress(httpSpec) : undefined;
  // Refusing peers after accept still exposes the port: a non-loopback bind is itself the opt-in.
  if (httpAddr && !allowRemote && !isLoopbackHost(httpAddr.host)) {
    throw new AivaultError(
      'usage',
      `--http ${httpSpec}: ${httpAddr.host} is not a loopback address; listening there needs --http-allow-remote (or AIVAULTD_HTTP_ALLOW_REMOTE=1)`,
    );
  }
  const proxySpec = opts.httpsProxy ?? config.httpsProxyListen;
  const proxyAddr = proxySpec !== undefined ? parseListenAddress(proxySpec, '--https-proxy') : undefined;
  if (proxyAddr && !allowRemote && !isLoopbackHost(proxyAddr.host)) {
    throw new AivaultError(
      'usage',
      `--https-proxy ${proxySpec}: ${proxyAddr.host} is not a loopback address; listening there needs --http-allow-remote (or AIVAULTD_HTTP_ALLOW_REMOTE=1)`,
    );
  }
  const metricsSpec = opts.metricsOpen ?? config.metricsOpenListen;
  const metricsAddr =
    metricsSpec !== undefined ? parseListenAddress(metricsSpec, '--metrics-open') : undefined;
  if (metricsAddr && !isLoopbackHost(metricsAddr.host)) {
    throw new AivaultError(
      'usage',
      `--metrics-open ${metricsSpec}: the open metrics listener is loopback only`,
    );
  }
  const fleet = await startFleet(config);
  const pool = new DaemonPool(config, {
    ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
    ...(opts.approvalTimeoutMs !== undefined ? { approvalTimeoutMs: opts.approvalTimeoutMs } : {}),
  });
  // Every approval decision (approved, denied, timed out, caller gone) is an audit line; never a secret.
  const approvalAudit = new AuditLog(config, vaultPaths(config), { sealKey: () => pool.auditKey() });
  const stopAuditingApprovals = auditApprovals(pool.approvals, (event) => {
    approvalAudit.append(event).catch((err: unknown) => {
      process.stderr.write(`aivaultd: ${(err as Error).message}\n`);
    });
  });
  // /metrics reads the pool's shared counters at scrape time (src/front/metrics.ts).
  const metrics: DaemonMetrics = createDaemonMetrics({
    buffer: pool.metrics,
    rateLimit: pool.rateLimitBuffer,
    snapshot: lazyCatalog(config, pool),
    activeWorkers: () => pool.workerSpread().active,
  });
  let metricsOpen: MetricsListener | undefined;
  // This thread's policy reads/writes (tokens.json, admin routes) take the seal key from the crypto worker.
  const unsetPolicySeal = setPolicySealSource(config.vaultDir, () => pool.policySeal());
  const closePool = async (deadlineMs: number): Promise<void> => {
    await pool.close(deadlineMs);
    stopAuditingApprovals();
    unsetPolicySeal();
    await fleet.stop(); // after the workers' last audit lines
  };
  // Writes made outside the daemon (hand edits, other tools) bump the generation every cache is keyed on.
  const watcher = startVaultWatcher(vaultPaths(config), pool.generation, {
    ...(testing?.watchVault !== undefined ? { watch: testing.watchVault } : {}),
    ...(testing?.vaultPollMs !== undefined ? { pollMs: testing.vaultPollMs } : {}),
  });
  let resolveStopped!: () => void;
  const stopped = new Promise<void>((r) => (resolveStopped = r));
  let stopping: Promise<void> | undefined;
  let served = 0;
  let server: SocketServer;
  let callerServer: SocketServer | undefined;
  const pidPath = join(socketPath, '..', 'aivaultd.pid');
  const httpInfoPath = join(socketPath, '..', 'aivaultd.http.json');
  const proxyInfoPath = join(socketPath, '..', HTTPS_PROXY_INFO_FILE);
  let http: HttpServer | undefined;
  let httpsProxy: HttpsProxyServer | undefined;
  // Dashboard login codes and sessions live only in this process's memory (issue 16). Locking the vault
  // ends them all (and their live-calls sockets): the dashboard decides approvals and revokes tokens, an
  // operator's powers that must not outlive the lock in a browser tab left open.
  const dashboard = new DashboardAuth();
  const endDashboardSessions = (): void => dashboard.clear();
  pool.onLocked.add(endDashboardSessions);

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      watcher.close();
      pool.onLocked.delete(endDashboardSessions);
      server?.stopListening();
      callerServer?.stopListening();
      http?.stopListening();
      httpsProxy?.stopListening();
      metricsOpen?.stopListening();
      metrics.close();
      http?.closeWebSockets();
      await closePool(opts.shutdownDeadlineMs ?? 10_000);
      server?.closeConnections();
      callerServer?.closeConnections();
      http?.closeConnections();
      httpsProxy?.closeConnections();
      if (opts.pidFile !== false) await fsp.rm(pidPath, { force: true });
      if (http) await fsp.rm(httpInfoPath, { force: true });
      if (httpsProxy) await fsp.rm(proxyInfoPath, { force: true });
      resolveStopped();
    })();
    return stopping;
  };

  let started: SocketServer | undefined;
  try {
    server = await startSocketServer(pool, {
      socketPath,
      socketMode: system ? 0o600 : socketMode,
      socketDirMode: system ? 0o750 : socketDirMode,
      // In system mode the daemon user can read the vault: no peer may name a file for it to read.
      allowLocalFiles: !opts.shared && !system,
      allowRootOwnedDir: opts.shared === true,
      role: system ? 'operator' : 'owner',
      dashboardLogin: () => (http ? dashboard.issueLoginCode() : undefined),
      ...(opts.maxInflightPerConnection !== undefined
        ? { maxInflightPerConnection: opts.maxInflightPerConnection }
        : {}),
      onConnectionOpened: () => {
        served++;
        if (opts.once && served === 1) server?.stopListening();
      },
      onConnectionClosed: () => {
        if (opts.once && served >= 1 && server.connections === 0) void stop();
      },
    });
    started = server;
    if (system) {
      callerServer = await startSocketServer(pool, {
        socketPath: system.callerSocket,
        socketMode: 0o660,
        socketDirMode: 0o750,
        allowLocalFiles: false,
        role: 'caller',
      });
    }
  } catch (err) {
    started?.stopListening();
    watcher.close();
    await closePool(0);
    throw err;
  }
  if (httpAddr) {
    try {
      // Imported only when enabled: its routes (operator API, dashboard, the registry they read) would
      // otherwise sit in the main thread's heap of every socket-only daemon (issue 12, idle RSS).
      const { startHttpServer } = await import('./http-server.js');
      http = await startHttpServer(server.app, pool, config, {
        ...httpAddr,
        allowRemote,
        dashboard,
        approvals: pool.approvals,
        ...(testing?.tokenRecheckMs !== undefined ? { tokenRecheckMs: testing.tokenRecheckMs } : {}),
        ...(testing?.wsIdleTimeoutS !== undefined ? { wsIdleTimeoutS: testing.wsIdleTimeoutS } : {}),
        metrics,
      });
    } catch (err) {
      server.stopListening();
      watcher.close();
      await closePool(0);
      throw err;
    }
  }
  if (proxyAddr) {
    try {
      // Imported only when enabled: the proxy's CA (node-forge, ~850 KB of source) and its WebSocket
      // server would otherwise sit in the main thread's heap of every daemon (issue 12, memory).
      const { startHttpsProxy } = await import('./https-proxy/server.js');
      httpsProxy = await startHttpsProxy(pool, config, {
        ...proxyAddr,
        allowRemote,
        vaultTag: vaultTag(config.vaultDir),
        ...(testing?.tokenRecheckMs !== undefined ? { tokenRecheckMs: testing.tokenRecheckMs } : {}),
      });
    } catch (err) {
      server.stopListening();
      http?.stopListening();
      watcher.close();
      await closePool(0);
      throw err;
    }
  }
  try {
    if (metricsAddr) metricsOpen = await startMetricsListener(metrics, metricsAddr);
    if (opts.pidFile !== false) await writeRunFile(pidPath, `${process.pid}\n`);
    if (httpsProxy) {
      const { host, port, caCertPath } = httpsProxy;
      await writeRunFile(
        proxyInfoPath,
        `${JSON.stringify({ host, port, ca: caCertPath, pid: process.pid })}\n`,
      );
    }
    // `aivault run` reads this to find the listener (and checks /aivault/health before trusting it).
    if (http) {
      await writeRunFile(
        httpInfoPath,
        `${JSON.stringify({ host: http.host, port: http.port, pid: process.pid })}\n`,
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { socketPath, pool, server, http, httpsProxy, metricsOpen, stopped, stop };
}

const HELP = `Usage: aivaultd [options]

The aivault broker daemon: listens on a unix socket (WebSocket, msgpack frames) and runs
capability invocations in worker threads. Secrets never leave the daemon.

Options:
  --socket <path>   socket path (default: $AIVAULTD_SOCKET, $AIVAULT_DIR/run/aivaultd.sock,
                    or ~/.aivault/run/aivaultd.sock)
  --once            serve one connection, then exit
  --shared          group-shared socket: mode 0660, directory 0770, at
                    ${SHARED_SOCKET_PATH} unless --socket is given. Put the operator
                    and agent users in one group that owns the directory.
  --workers <n>     most request worker threads (default: $AIVAULTD_WORKERS or CPU cores). One
                    starts with the daemon; calls go to as few as keep up, and another one joins
                    (started then) while those are busy and a core is idle
  --http <host:port>  also serve the loopback HTTP/WebSocket contracts (proxy, /v/ passthrough,
                    /aivault/ws, operator API), e.g. 127.0.0.1:19790 (default: $AIVAULTD_HTTP; off)
  --system-config <path>  system mode (set up by \`sudo aivault system install\`): run as the
                    daemon user, serve the layout's operator socket (root and the daemon user
                    only) and caller socket (its group: invoke and metadata only)
  --https-proxy <host:port>  also serve an HTTPS (CONNECT) proxy for unchanged tools: TLS to
                    capability hosts is terminated with a leaf cert from the vault's local CA
                    (aivault ca path) and every request is brokered (default: $AIVAULTD_HTTPS_PROXY;
                    off; \`aivault run\` turns it on). Loopback only unless --http-allow-remote.
  --approval-timeout <seconds>  how long a call to a capability with an approval policy
                    (aivault capability policy set <id> --approval once|always) waits for the
                    operator (aivault approvals / approve / deny) before it fails with
                    approval_denied (default 60)
  --metrics-open <host:port>  also serve GET /metrics WITHOUT a token on a separate scrape-only
                    listener, loopback only (e.g. 127.0.0.1:9464; default: $AIVAULTD_METRICS_OPEN; off).
                    The --http listener's /metrics always needs an operator token (Bearer avo_…).
  --http-allow-remote  allow --http on a non-loopback address (e.g. 0.0.0.0:19790) and accept
                    non-loopback peers (default: such an address is refused at start;
                    $AIVAULTD_HTTP_ALLOW_REMOTE=1). Tokens are still required on every route.
  --fleet-redis <url>  share per-capability rate limits with every aivaultd of the fleet through
                    Redis, e.g. redis://127.0.0.1:6379/0 (default: $AIVAULT_FLEET_REDIS; off = local
                    limits). Redis unreachable: rate-limited capabilities are refused (fail closed)
  --fleet-id <name>  namespace of the fleet's Redis keys and audit rows (default: $AIVAULT_FLEET_ID
                    or "default")
  --fleet-fail-open  while Redis is unreachable, admit rate-limited calls uncounted (loud warning and
                    an audit event; $AIVAULT_FLEET_FAIL_OPEN=1)
  --fleet-audit-postgres <url>  also copy every audit event to PostgreSQL, e.g.
                    postgres://aivault@db/aivault (default: $AIVAULT_FLEET_AUDIT_POSTGRES; off)
  --fleet-node <name>  this host's name in the central audit table (default: $AIVAULT_FLEET_NODE or
                    the hostname). See docs/fleet.md
  -h, --help        show this help

Environment: AIVAULT_DIR, AIVAULT_FLEET_*, AIVAULTD_SOCKET, AIVAULTD_SOCKET_MODE, AIVAULTD_SOCKET_DIR_MODE, AIVAULTD_WORKERS,
AIVAULTD_HTTP, AIVAULTD_HTTPS_PROXY, AIVAULTD_HTTP_ALLOW_REMOTE, AIVAULTD_METRICS_OPEN,
AIVAULTD_WORKER_HEAP_MB (V8 heap limit of each worker thread in MB, default ${DEFAULT_WORKER_HEAP_MB}; a worker
over it is restarted), AIVAULTD_WORKER_YOUNG_MB (V8 young generation of each request worker in MB,
default ${DEFAULT_WORKER_YOUNG_MB}; the crypto worker's is at most ${CRYPTO_WORKER_YOUNG_MB}),
AIVAULT_DEV_* (honoured only by a vault created with \`aivault init --dev\`).

On Linux aivaultd makes itself non-dumpable (no ptrace or /proc/<pid>/mem reads by the same user) and
refuses to start without its prctl addon (bash scripts/build-addon.sh dumpable).
`;

export interface ParsedArgs {
  help: boolean;
  options: DaemonOptions;
}

/** The --fleet-* flags given (validated again, with the environment, by startDaemon). */
function fleetFlags(values: Record<string, string | boolean | undefined>): FleetOverrides | undefined {
  const str = (name: string): string | undefined =>
    typeof values[name] === 'string' ? (values[name] as string) : undefined;
  const o: { -readonly [K in keyof FleetOverrides]: FleetOverrides[K] } = {};
  const redisUrl = str('fleet-redis');
  const id = str('fleet-id');
  const auditPostgresUrl = str('fleet-audit-postgres');
  const node = str('fleet-node');
  if (redisUrl !== undefined) o.redisUrl = redisUrl;
  if (id !== undefined) o.id = id;
  if (auditPostgresUrl !== undefined) o.auditPostgresUrl = auditPostgresUrl;
  if (node !== undefined) o.node = node;
  if (values['fleet-fail-open']) o.failOpen = true;
  if (Object.keys(o).length === 0) return undefined;
  parseFleetSettings({}, o); // a bad URL or name is a usage error before anything starts
  return o;
}

/** Flags via node:util parseArgs (maintained, strict: unknown flags and missing values are usage errors). */
export function parseArgs(argv: readonly string[]): ParsedArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseNodeArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        help: { type: 'boolean', short: 'h' },
        once: { type: 'boolean' },
        shared: { type: 'boolean' },
        socket: { type: 'string' },
        workers: { type: 'string' },
        http: { type: 'string' },
        'https-proxy': { type: 'string' },
        'metrics-open': { type: 'string' },
        'http-allow-remote': { type: 'boolean' },
        'system-config': { type: 'string' },
        'fleet-redis': { type: 'string' },
        'fleet-id': { type: 'string' },
        'fleet-fail-open': { type: 'boolean' },
        'fleet-audit-postgres': { type: 'string' },
        'fleet-node': { type: 'string' },
        'approval-timeout': { type: 'string' },
      },
    }));
  } catch (err) {
    throw new AivaultError('usage', `${(err as Error).message.split('\n')[0]} (see aivaultd --help)`);
  }
  const options: { -readonly [K in keyof DaemonOptions]: DaemonOptions[K] } = {};
  if (values.once) options.once = true;
  if (values.shared) options.shared = true;
  if (typeof values.socket === 'string') options.socketPath = values.socket;
  if (typeof values.http === 'string') options.http = values.http;
  if (typeof values['https-proxy'] === 'string') options.httpsProxy = values['https-proxy'];
  if (typeof values['metrics-open'] === 'string') options.metricsOpen = values['metrics-open'];
  if (values['http-allow-remote']) options.httpAllowRemote = true;
  const fleet = fleetFlags(values);
  if (fleet) options.fleet = fleet;
  if (typeof values['system-config'] === 'string') {
    const layout = readSystemLayout(values['system-config']);
    if (!layout) throw new AivaultError('usage', `no system-mode layout at ${values['system-config']}`);
    if (typeof process.getuid === 'function' && process.getuid() === 0) {
      throw new AivaultError(
        'usage',
        `system mode runs as the ${layout.user} user, never as root (sudo aivault system run, or the systemd unit)`,
      );
    }
    options.system = layout;
  }
  workerResourceLimits(); // a bad AIVAULTD_WORKER_HEAP_MB is a usage error at start, not a worker crash loop
  const approvalTimeout = values['approval-timeout'];
  if (typeof approvalTimeout === 'string') {
    const sec = Number(approvalTimeout);
    if (!Number.isFinite(sec) || sec <= 0 || sec > 86_400) {
      throw new AivaultError(
        'usage',
        '--approval-timeout must be a number of seconds, above 0 and at most 86400',
      );
    }
    options.approvalTimeoutMs = Math.round(sec * 1000);
  }
  if (typeof values.workers === 'string') {
    const n = Number(values.workers);
    if (!Number.isInteger(n) || n < 1)
      throw new AivaultError('usage', '--workers must be a positive integer');
    options.workers = n;
  }
  return { help: values.help === true, options };
}

async function main(argv: readonly string[]): Promise<number> {
  let parsed: ParsedArgs;
  try {
    parsed = parseArgs(argv);
  } catch (err) {
    process.stderr.write(`aivaultd: ${(err as Error).message}\n`);
    return isAivaultError(err) && err.code !== 'usage' ? 1 : 2;
  }
  if (parsed.help) {
    process.stdout.write(HELP);
    return 0;
  }
  // First, before any worker thread exists or any secret is read.
  const dumpable = disableDumpable();
  if (!dumpable.ok) {
    if (process.platform === 'linux') {
      process.stderr.write(
        `aivaultd: refusing to start: cannot make the daemon non-dumpable: ${dumpable.reason}\n`,
      );
      return 1;
    }
    process.stderr.write(
      `aivaultd: warning: daemon memory is readable by same-user ptrace (${dumpable.reason})\n`,
    );
  }
  const core = disableCoreDumps();
  if (!core.ok) {
    process.stderr.write(
      `aivaultd: warning: core dumps not disabled (${core.reason}); run under \`ulimit -c 0\`\n`,
    );
  }
  // Handlers first: a signal that arrives while starting up still ends in a clean shutdown.
  const running: { daemon?: Daemon; signalled?: boolean } = {};
  const onSignal = (): void => {
    running.signalled = true;
    void running.daemon?.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const daemon = await startDaemon(loadConfig(), parsed.options);
  running.daemon = daemon;
  if (running.signalled) void daemon.stop();
  process.stderr.write(`aivaultd: listening on ${daemon.socketPath} (pid ${process.pid})\n`);
  if (parsed.options.system) {
    process.stderr.write(`aivaultd: callers on ${parsed.options.system.callerSocket}\n`);
  }
  if (daemon.http) {
    process.stderr.write(
      `aivaultd: HTTP on http://${daemon.http.host.includes(':') ? `[${daemon.http.host}]` : daemon.http.host}:${daemon.http.port}\n`,
    );
  }
  if (daemon.metricsOpen) {
    const m = daemon.metricsOpen;
    process.stderr.write(
      `aivaultd: metrics (no token) on http://${m.host.includes(':') ? `[${m.host}]` : m.host}:${m.port}/metrics\n`,
    );
  }
  if (daemon.httpsProxy) {
    const p = daemon.httpsProxy;
    process.stderr.write(
      `aivaultd: HTTPS proxy on http://${p.host.includes(':') ? `[${p.host}]` : p.host}:${p.port} (CA ${p.caCertPath})\n`,
    );
  }
  await daemon.stopped;
  return 0;
}

function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      // The message only, never a stack: it may name a path, never a secret (none reaches this thread).
      const msg = isAivaultError(err)
        ? `${err.code}: ${err.message}`
        : `internal error: ${err instanceof Error ? err.message : String(err)}`;
      process.stderr.write(`aivaultd: ${msg}\n`);
      process.exit(1);
    },
  );
}

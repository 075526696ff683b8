/**
 * The CLI's way to aivaultd: connect over the unix socket, autostarting the daemon when the socket is
 * absent (unless AIVAULTD_AUTOSTART=0). Autostart is serialised with a lock so 50 parallel CLI calls
 * start one daemon, not 50.
 */
import { isListening } from '../core/protocol/socket-probe.js';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AivaultError } from '../core/errors.js';
import type { Config } from '../core/config/env.js';
import { connect, type DaemonClient } from '../core/protocol/client.js';
import { openRunFile, prepareRunDir } from '../front/run-dir.js';

export const DAEMON_ENTRY = fileURLToPath(new URL('../front/main.js', import.meta.url));
const START_TIMEOUT_MS = 15_000;

async function tryConnect(config: Config): Promise<DaemonClient | undefined> {
  try {
    return await connect({ socketPath: config.socketPath, connectTimeoutMs: 2000 });
  } catch (err) {
    if (err instanceof AivaultError && err.code === 'daemon_unavailable') return undefined;
    throw err;
  }
}

/**
 * Start aivaultd detached, logging to <run dir>/aivaultd.log, and return once it accepts connections.
 * `http` also opens the loopback HTTP listener (`--http host:port`, used by `aivault run`); without it
 * the daemon still honours AIVAULTD_HTTP from the inherited environment.
 */
export async function startDaemon(
  config: Config,
  opts: { http?: string; httpsProxy?: string } = {},
): Promise<DaemonClient> {
  const runDir = dirname(config.socketPath);
  // Never through a symlink: the daemon re-checks, but the CLI must not chmod a planted link's target first.
  await prepareRunDir(runDir, config.socketDirMode);
  const { lockDir } = await import('./autostart-lock.js');
  const release = await lockDir(runDir, {
    lockfilePath: join(runDir, 'autostart.lock'),
    stale: START_TIMEOUT_MS,
    realpath: false,
    retries: { retries: 300, minTimeout: 20, maxTimeout: 100 },
  });
  try {
    // Another CLI process may have started it while we waited for the lock.
    const existing = await tryConnect(config);
    if (existing) return existing;
    const log = await openRunFile(join(runDir, 'aivaultd.log'), 'a');
    // Loaded here: node:child_process (with dgram and friends) is ~5 ms of every CLI start otherwise.
    const { spawn } = await import('node:child_process');
    const args = [DAEMON_ENTRY, '--socket', config.socketPath];
    if (opts.http !== undefined) args.push('--http', opts.http);
    if (opts.httpsProxy !== undefined) args.push('--https-proxy', opts.httpsProxy);
    const child = spawn(process.execPath, args, {
      detached: true,
      stdio: ['ignore', log.fd, log.fd],
      env: process.env,
    });
    await log.close();
    child.unref();
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const client = await tryConnect(config);
      if (client) return client;
      if (child.exitCode !== null) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new AivaultError(
      'daemon_unavailable',
      `aivaultd did not start (see ${join(runDir, 'aivaultd.log')})`,
    );
  } finally {
    await release().catch(() => undefined);
  }
}

export async function connectDaemon(
  config: Config,
  opts: { autostart?: boolean } = {},
): Promise<DaemonClient> {
  const client = await tryConnect(config);
  if (client) return client;
  if (config.system) {
    // The system daemon is the service manager's to start, as its own user; never ours.
    throw new AivaultError(
      'daemon_unavailable',
      `aivaultd (system mode) is not reachable at ${config.socketPath}: is it running (sudo systemctl status aivaultd), and is this user in the ${config.system.layout.group} group?`,
    );
  }
  if (opts.autostart === false || !config.daemonAutostart) {
    throw new AivaultError(
      'daemon_unavailable',
      `aivaultd is not running at ${config.socketPath} and autostart is off (AIVAULTD_AUTOSTART=0); start it with: aivaultd`,
    );
  }
  return startDaemon(config);
}

export type OperatorMessage = { type: 'status' } | { type: 'lock' } | { type: 'unlock'; passphrase: string };

/** Send one operator frame. Without autostart, a missing daemon is `daemon_unavailable`. */
export async function tellDaemon(
  config: Config,
  msg: OperatorMessage,
  opts: { autostart?: boolean } = {},
): Promise<Record<string, string | number | boolean | null>> {
  const client = await connectDaemon(config, { autostart: opts.autostart ?? false });
  try {
    return await client.operator(msg.type, msg.type === 'unlock' ? msg.passphrase : undefined);
  } finally {
    client.close();
  }
}

/**
 * The sockets an aivaultd serving this vault would listen on: the configured one and the vault's own
 * default (AIVAULTD_SOCKET cannot hide a running daemon from the in-process check).
 */
function candidateSockets(config: Config): string[] {
  const own = config.vaultDirFromEnv
    ? join(config.vaultDir, 'run', 'aivaultd.sock')
    : join(config.homeDir, '.aivault', 'run', 'aivaultd.sock');
  return [...new Set([config.socketPath, own])];
}

/**
 * In-process invocation (AIVAULTD_DISABLE=1) while aivaultd serves the same vault would run with a
 * fresh rate-limit counter of its own: refuse it. A seatbelt, not a boundary: code that can decrypt the
 * vault in-process already holds the key (see docs/security.md, "which mode protects against what").
 */
export async function refuseInProcessWhileServed(config: Config): Promise<void> {
  for (const path of candidateSockets(config)) {
    if (await isListening(path)) {
      throw new AivaultError(
        'policy_violation',
        `aivaultd is serving this vault (${path}): in-process invocation (AIVAULTD_DISABLE=1) is refused so that its rate limits and audit cannot be bypassed; unset AIVAULTD_DISABLE`,
      );
    }
  }
}

/**
 * Before anything secret goes to the daemon (a passphrase): is the socket really our daemon's? In user
 * mode the run dir and socket must be this user's with the configured dir mode; in system mode the
 * daemon user's with 0750. See src/core/protocol/socket-identity.ts.
 */
export async function assertTrustedDaemon(config: Config): Promise<void> {
  const { assertDaemonSocket } = await import('../core/protocol/socket-identity.js');
  if (config.system) {
    const { execFileSync } = await import('node:child_process');
    const uid = Number(execFileSync('id', ['-u', config.system.layout.user], { encoding: 'utf8' }).trim());
    await assertDaemonSocket(config.socketPath, { expectedUid: uid, dirMode: 0o750 });
    return;
  }
  await assertDaemonSocket(config.socketPath, { dirMode: config.socketDirMode });
}

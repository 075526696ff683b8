/**
 * The CLI's way to aivaultd: connect over the unix socket, autostarting the daemon when the socket is
 * absent (unless AIVAULTD_AUTOSTART=0). Autostart is serialised with a lock so 50 parallel CLI calls
 * start one daemon, not 50.
 */
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import lockfile from 'proper-lockfile';
import { AivaultError } from '../errors.js';
import type { Config } from '../config/env.js';
import { connect, type DaemonClient } from '../protocol/client.js';
import { openRunFile, prepareRunDir } from '../daemon/run-dir.js';

export const DAEMON_ENTRY = join(dirname(fileURLToPath(import.meta.url)), '..', 'daemon', 'main.js');
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
export async function startDaemon(config: Config, opts: { http?: string } = {}): Promise<DaemonClient> {
  const runDir = dirname(config.socketPath);
  // Never through a symlink: the daemon re-checks, but the CLI must not chmod a planted link's target first.
  await prepareRunDir(runDir, config.socketDirMode);
  const release = await lockfile.lock(runDir, {
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
    const args = [DAEMON_ENTRY, '--socket', config.socketPath];
    if (opts.http !== undefined) args.push('--http', opts.http);
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

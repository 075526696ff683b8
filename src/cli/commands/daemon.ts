/** `aivault restart`: stop the running aivaultd (pid file next to the socket) and start a fresh one. */
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { AivaultError } from '../../core/errors.js';
import type { CliContext, CommandResult } from '../context.js';
import { startDaemon } from '../daemon-link.js';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function readDaemonPid(socketPath: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(join(dirname(socketPath), 'aivaultd.pid'), 'utf8')).trim());
    return Number.isInteger(pid) && pid > 1 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export async function stopDaemon(socketPath: string, timeoutMs = 15_000): Promise<number | undefined> {
  const pid = await readDaemonPid(socketPath);
  if (pid === undefined || !isAlive(pid)) return undefined;
  process.kill(pid, 'SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() > deadline)
      throw new AivaultError('daemon_unavailable', `aivaultd (pid ${pid}) did not stop in time`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return pid;
}

export async function restart(ctx: CliContext): Promise<CommandResult> {
  const stopped = await stopDaemon(ctx.config.socketPath);
  const client = await startDaemon(ctx.config);
  client.close();
  // The daemon accepts connections a moment before it writes its pid file (it must not overwrite a live
  // daemon's pid file if its own start fails), so give the file a moment to appear.
  let pid = await readDaemonPid(ctx.config.socketPath);
  for (let i = 0; pid === undefined && i < 40; i++) {
    await new Promise((r) => setTimeout(r, 25));
    pid = await readDaemonPid(ctx.config.socketPath);
  }
  return {
    json: { stoppedPid: stopped ?? null, pid: pid ?? null, socket: ctx.config.socketPath },
    human: (p) =>
      `${p.green('aivaultd restarted')}${stopped ? ` (was pid ${stopped})` : ''}: pid ${pid ?? '?'} on ${ctx.config.socketPath}`,
  };
}

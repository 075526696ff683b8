/**
 * Throwaway Redis and PostgreSQL servers for the fleet tests (issue 18), from the Debian packages that
 * scripts/setup-test-env.sh installs: each on loopback, on a free port, with its data in a temp dir; never
 * the system services. Stop them with `stop()` (register it with onTestFinished / afterAll).
 *   startRedis()     redis-server with no persistence; kill() (SIGKILL) and restart() on the same port
 *   startPostgres()  initdb + pg_ctl (as the `postgres` user when running as root, like CI); trust auth
 *                    on 127.0.0.1 only; pause() = pg_ctl stop, resume() = pg_ctl start on the same port
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PG_BIN = '/usr/lib/postgresql/15/bin';

export function haveRedis(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function havePostgres(): boolean {
  return existsSync(join(PG_BIN, 'initdb')) && existsSync(join(PG_BIN, 'pg_ctl'));
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port (polled, bounded). */
export async function waitForPort(port: number, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = netConnect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on 127.0.0.1:${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  /** SIGKILL the server (no shutdown, like a crash). */
  kill(): Promise<void>;
  /** Start it again on the same port (empty: no persistence). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedis(): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'aivault-redis-'));
  const port = await freePort();
  let child: ChildProcess | undefined;
  const start = async (): Promise<void> => {
    const c = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir],
      { stdio: 'ignore' },
    );
    child = c;
    await waitForPort(port);
  };
  const kill = async (): Promise<void> => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGKILL');
    await exited;
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    kill,
    restart: start,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface PostgresServer {
  readonly port: number;
  readonly url: string;
  /** Stop the server (pg_ctl stop -m fast); resume() starts it again on the same port and data. */
  pause(): void;
  resume(): Promise<void>;
  stop(): void;
}

export async function startPostgres(): Promise<PostgresServer> {
  const root = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'aivault-pg-'));
  const data = join(dir, 'data');
  const port = await freePort();
  if (root) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(dir, uid, gid);
  }
  // CI runs as root, and PostgreSQL refuses to run as root: run its tools as the `postgres` user.
  const run = (tool: string, args: readonly string[]): void => {
    const cmd = root ? 'runuser' : join(PG_BIN, tool);
    const argv = root ? ['-u', 'postgres', '--', join(PG_BIN, tool), ...args] : [...args];
    execFileSync(cmd, argv, { stdio: 'ignore', cwd: dir });
  };
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync']);
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const start = async (): Promise<void> => {
    run('pg_ctl', ['-D', data, '-o', opts, '-l', join(dir, 'log'), '-w', 'start']);
    await waitForPort(port);
  };
  const pause = (): void => run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
  await start();
  let stopped = false;
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    pause,
    resume: start,
    stop() {
      if (stopped) return;
      stopped = true;
      try {
        run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

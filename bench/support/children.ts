/**
 * The bench's child processes (bench process): start one and wait for its ready line, stop one, run the
 * load driver (bench/support/driver.ts) in its own process, and kill every child still running when the
 * bench fails or is interrupted.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, TSX } from './context.js';
import type { DriverConfig } from './driver.js';

const children = new Set<ChildProcess>();

/** Spawn a long-lived child and wait for a line matching `ready` (stdout or stderr). */
export function startChild(
  cmd: string,
  argv: string[],
  env: NodeJS.ProcessEnv,
  ready: RegExp,
): Promise<{ child: ChildProcess; line: string }> {
  const child = spawn(cmd, argv, { env, stdio: ['ignore', 'pipe', 'pipe'], cwd: ROOT });
  children.add(child);
  child.on('exit', () => children.delete(child));
  return new Promise((resolveP, reject) => {
    let buf = '';
    const on = (d: Buffer): void => {
      buf += d.toString();
      const line = buf.split('\n').find((l) => ready.test(l));
      if (line) {
        child.stdout?.off('data', on);
        child.stderr?.off('data', on);
        child.stdout?.resume();
        child.stderr?.resume();
        resolveP({ child, line });
      }
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
    child.once('exit', (code) =>
      reject(new Error(`${cmd} ${argv.join(' ')} exited ${code}: ${buf.slice(-400)}`)),
    );
    setTimeout(
      () => reject(new Error(`${argv.join(' ')} not ready in 30 s: ${buf.slice(-400)}`)),
      30_000,
    ).unref();
  });
}

export function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  return new Promise((r) => {
    if (child.exitCode !== null || child.signalCode !== null) return r();
    child.once('exit', () => r());
    child.kill(signal);
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  });
}

/** Run the driver in its own process; returns its JSON line. */
export function drive<T>(cfg: DriverConfig): Promise<T> {
  return new Promise((resolveP, reject) => {
    const child = spawn(
      process.execPath,
      [...TSX, join(ROOT, 'bench', 'support', 'driver.ts'), JSON.stringify(cfg)],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    children.add(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => {
      children.delete(child);
      const line = out.trim().split('\n').at(-1) ?? '';
      if (code === 0 && line.startsWith('{')) resolveP(JSON.parse(line) as T);
      else reject(new Error(`driver exited ${code}: ${err.slice(-600)}`));
    });
  });
}

/** Kill every child still running (the bench failed or was interrupted). */
export function killChildren(): void {
  for (const c of children) c.kill('SIGKILL');
}

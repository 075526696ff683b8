/**
 * Issue 19 build 4 / seed 002 "debugger / memory": same-user code cannot read aivaultd's memory. The
 * attacker is a process of the daemon's own user: it opens /proc/<pid>/mem and /proc/<pid>/environ. aivaultd
 * sets prctl(PR_SET_DUMPABLE, 0) at start-up (src/front/dumpable.ts), so the kernel makes those files
 * root-owned and refuses the open. A control daemon started through the in-process API (`startDaemon`, which
 * never calls prctl) is readable by the same attacker, which proves the reads would work without it.
 *
 * Root can read any process's memory, so when the suite runs as root (CI) both daemons and the attacker run
 * as an unprivileged user created here; otherwise the test process itself is that same user.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTraversable } from '../support/traverse.js';
import { DAEMON } from '../support/run-cli.js';
import { tmpDir } from '../support/tmp-dir.js';

const USER = 'aivault-memtest';
const isRoot = process.getuid?.() === 0;

/** argv prefix that runs a command as the unprivileged test user (empty when we already are one). */
function asUser(): string[] {
  return isRoot ? ['setpriv', `--reuid=${USER}`, `--regid=${USER}`, '--clear-groups', '--'] : [];
}

function ensureUser(): void {
  if (!isRoot || spawnSync('id', ['-u', USER]).status === 0) return;
  const r = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', USER]);
  if (r.status !== 0) throw new Error(`useradd failed: ${r.stderr.toString()}`);
}

function uidOf(): number {
  return isRoot ? Number(spawnSync('id', ['-u', USER]).stdout.toString().trim()) : process.getuid!();
}

const dir = tmpDir('aivault-mem-');
const children: ChildProcess[] = [];

function start(argv: string[], env: Record<string, string>): Promise<number> {
  const [cmd, ...rest] = [...asUser(), ...argv];
  const child = spawn(cmd!, rest, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  children.push(child);
  return new Promise((res, rej) => {
    let err = '';
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('listening')) res(child.pid!);
    });
    child.once('exit', (c) => rej(new Error(`daemon exited ${c}: ${err}`)));
  });
}

/** What the attacker (same uid as the daemon) gets from reading a /proc file: ok, or the errno code. */
function attackerReads(path: string, offset?: string): string {
  // A child process so the read happens with the attacker's uid; for `mem`, read at a mapped address.
  const script = `
    const fs = require('node:fs');
    try {
      const fd = fs.openSync(${JSON.stringify(path)}, 'r');
      const buf = Buffer.alloc(16);
      fs.readSync(fd, buf, 0, 16, ${offset ? `Number('0x${offset}')` : 0});
      process.stdout.write('ok');
    } catch (e) { process.stdout.write(e.code); }`;
  const [cmd, ...rest] = [...asUser(), process.execPath, '-e', script];
  return spawnSync(cmd!, rest).stdout.toString();
}

function firstReadableMapping(pid: number): string {
  // Read as root/test user before the attack only to pick an address; for the hardened daemon the attacker
  // cannot even open maps, so the address comes from the control's layout or is 0 (the open fails first).
  const r = spawnSync('cat', [`/proc/${pid}/maps`]);
  const line = r.stdout
    .toString()
    .split('\n')
    .find((l) => / r[w-]-p /.test(l));
  return line ? line.split('-')[0]! : '0';
}

let hardened: number;
let control: number;
let traversal: { restore(): void } | undefined;
beforeAll(async () => {
  ensureUser();
  if (isRoot) traversal = makeTraversable();
  const env = { HOME: dir, AIVAULT_DIR: join(dir, 'vault') };
  chmodSync(dir, 0o700);
  chownSync(
    dir,
    uidOf(),
    isRoot ? Number(spawnSync('id', ['-g', USER]).stdout.toString()) : process.getgid!(),
  );
  const init = `
    const { Vault } = await import(${JSON.stringify(resolve('dist/src/stores/vault/index.js'))});
    const { loadConfig } = await import(${JSON.stringify(resolve('dist/src/core/config/env.js'))});
    (await Vault.init(loadConfig(), { provider: 'file' })).close();`;
  const [cmd, ...rest] = [...asUser(), process.execPath, '--input-type=module', '-e', init];
  const r = spawnSync(cmd!, rest, { env: { ...process.env, ...env } });
  expect(r.status, r.stderr.toString()).toBe(0);
  hardened = await start(
    [process.execPath, DAEMON, '--workers', '1', '--socket', join(dir, 'run', 'a.sock')],
    env,
  );
  // The control: the same daemon code started through the in-process API, which never calls prctl.
  const ctl = `
    const { startDaemon } = await import(${JSON.stringify(DAEMON)});
    const { loadConfig } = await import(${JSON.stringify(resolve('dist/src/core/config/env.js'))});
    await startDaemon(loadConfig(), { workers: 1, socketPath: ${JSON.stringify(join(dir, 'run2', 'b.sock'))}, pidFile: false });
    process.stderr.write('listening\\n');`;
  control = await start([process.execPath, '--input-type=module', '-e', ctl], env);
}, 60_000);

afterAll(async () => {
  for (const c of children) {
    if (c.exitCode === null) {
      c.kill('SIGTERM');
      await new Promise((r) => c.once('exit', r));
    }
  }
  traversal?.restore();
});

describe('daemon memory: same-user code cannot read aivaultd through /proc', () => {
  it('the control daemon (no prctl) is readable by the same user', () => {
    expect(attackerReads(`/proc/${control}/environ`)).toBe('ok');
    expect(attackerReads(`/proc/${control}/mem`, firstReadableMapping(control))).toBe('ok');
  });

  it('aivaultd refuses the same reads: /proc/<pid>/mem and environ fail with EACCES/EPERM', () => {
    expect(['EACCES', 'EPERM']).toContain(attackerReads(`/proc/${hardened}/environ`));
    expect(['EACCES', 'EPERM']).toContain(
      attackerReads(`/proc/${hardened}/mem`, firstReadableMapping(hardened)),
    );
    expect(['EACCES', 'EPERM']).toContain(attackerReads(`/proc/${hardened}/maps`));
  });

  it('the kernel marks it non-dumpable: its /proc files are root-owned while it runs as the user', () => {
    expect(statSync(`/proc/${hardened}/status`).uid).toBe(0);
    expect(statSync(`/proc/${control}/status`).uid).toBe(uidOf());
    const status = spawnSync('cat', [`/proc/${hardened}/status`]).stdout.toString();
    expect(status).toMatch(new RegExp(`^Uid:\\s+${uidOf()}\\s`, 'm'));
  });
});

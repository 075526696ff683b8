/**
 * Issue 19 finding 5: same-user code plants symlinks in aivaultd's run dir before the daemon starts, so
 * that the daemon chmods or writes through them (a link at `run` to a dir of the attacker's choosing; a
 * link at the pid or http.json path to a file the attacker wants overwritten). aivaultd follows nothing
 * there (src/front/run-dir.ts): it refuses to start with a clear error and leaves the targets untouched.
 * The same goes for a run dir owned by someone else (root only: needs a second user).
 */
import { spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/core/config/env.js';
import { Vault } from '../../src/stores/vault/index.js';
import { CLI, DAEMON } from '../support/run-cli.js';
import { tmpDir } from '../support/tmp-dir.js';
import { skipOutsideCi } from '../support/ci.js';

const base = tmpDir('aivault-rundir-');
let n = 0;

beforeAll(async () => {
  const v = await Vault.init(loadConfig({ HOME: base, AIVAULT_DIR: join(base, 'vault') }), {
    provider: 'file',
  });
  v.close();
});

/** A fresh run dir location per case, under the shared vault (the daemon takes it from --socket). */
function runDirCase(): string {
  return join(base, `case-${n++}`, 'run');
}

function daemon(socket: string, extra: string[] = []): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [DAEMON, '--workers', '1', '--socket', socket, ...extra], {
    env: { ...process.env, HOME: base, AIVAULT_DIR: join(base, 'vault') },
    encoding: 'utf8',
    timeout: 60_000,
    killSignal: 'SIGTERM',
  });
  return { status: r.status, stderr: r.stderr };
}

function expectRefused(r: { status: number | null; stderr: string }, why: RegExp): void {
  expect(r.status).toBe(1);
  expect(r.stderr).toMatch(/refusing to start/);
  expect(r.stderr).toMatch(why);
  expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
}

describe('run dir: aivaultd never follows a planted symlink', () => {
  it('a symlinked run dir: refused, and the link target keeps its mode', () => {
    const run = runDirCase();
    const target = join(base, `elsewhere-${n}`);
    mkdirSync(target, { mode: 0o755 });
    mkdirSync(join(run, '..'), { recursive: true });
    symlinkSync(target, run);
    const r = daemon(join(run, 'aivaultd.sock'));
    expectRefused(r, /is a symlink/);
    expect(statSync(target).mode & 0o777).toBe(0o755);
  });

  /** Plant a link at run/<file> to a file the attacker wants overwritten, then start the daemon. */
  function plantedFile(file: string, extra: string[] = []): void {
    const run = runDirCase();
    mkdirSync(run, { recursive: true, mode: 0o700 });
    const victim = join(base, `victim-${n}`);
    writeFileSync(victim, 'precious\n');
    symlinkSync(victim, join(run, file));
    const r = daemon(join(run, 'aivaultd.sock'), extra);
    expectRefused(r, new RegExp(`${file.replace(/\./g, '\\.')} is a symlink`));
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
  }

  it('a symlink at the pid file path: refused, the target file is not overwritten', () => {
    plantedFile('aivaultd.pid');
  });

  it('a symlink at the http.json path: refused, the target file is not overwritten', () => {
    plantedFile('aivaultd.http.json', ['--http', '127.0.0.1:0']);
  });

  it('the CLI (restart, autostart) does not chmod a symlinked run dir either', () => {
    const home = join(base, `cli-${n++}`);
    mkdirSync(home, { mode: 0o700 });
    const target = join(base, `cli-target-${n}`);
    mkdirSync(target, { mode: 0o755 });
    symlinkSync(target, join(home, 'run'));
    const r = spawnSync(process.execPath, [CLI, 'restart'], {
      env: { ...process.env, HOME: home, AIVAULT_DIR: home },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/is a symlink/);
    expect(statSync(target).mode & 0o777).toBe(0o755);
  });

  it.skipIf(skipOutsideCi(process.getuid?.() === 0, 'root: chown the run dir to another user'))(
    'a run dir owned by another user: refused, not adopted',
    () => {
      const run = runDirCase();
      mkdirSync(run, { recursive: true, mode: 0o755 });
      chownSync(run, 65534, 65534); // nobody
      const r = daemon(join(run, 'aivaultd.sock'));
      expectRefused(r, /owned by uid 65534/);
      expect(statSync(run).mode & 0o777).toBe(0o755);
    },
  );
});

/**
 * SPEC §6 / seed 002 "debugger / memory": core dumps are disabled in aivaultd, whatever limit it inherits.
 * The daemon lowers its own RLIMIT_CORE to 0 soft AND hard at start-up (src/front/core-limit.ts), so:
 *  - started with unlimited core dumps, the running daemon has 0/0 (and can never raise it again);
 *  - started with 0 (`ulimit -c 0` / systemd `LimitCORE=0`) it stays 0;
 *  - the KEK and secret values are not in its argv or environment (a core's most greppable parts);
 *  - the file provider's key is read into sodium secure memory in the crypto worker only (not checkable
 *    from outside; covered by design, see docs/security.md).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DAEMON } from '../support/run-cli.js';
import { loadConfig } from '../../src/core/config/env.js';
import { Vault } from '../../src/stores/vault/index.js';

let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'aivault-core-'));
  const v = await Vault.init(loadConfig({ HOME: dir, AIVAULT_DIR: join(dir, 'vault') }), {
    provider: 'file',
  });
  v.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function coreLimit(pid: number): string {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max core file size'));
  return (line ?? '').replace(/\s+/g, ' ').trim();
}

async function runDaemon(core: string): Promise<{ limit: string; environ: string; cmdline: string }> {
  const sock = join(dir, `d-${core}.sock`);
  const child = spawn(
    'prlimit',
    [`--core=${core}`, process.execPath, DAEMON, '--socket', sock, '--workers', '1'],
    {
      env: { ...process.env, AIVAULT_DIR: join(dir, 'vault'), HOME: dir },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  await new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => d.toString().includes('listening') && resolve());
    child.once('exit', (c) => reject(new Error(`daemon exited ${c}`)));
  });
  const pid = child.pid!;
  const out = {
    limit: coreLimit(pid),
    environ: readFileSync(`/proc/${pid}/environ`, 'latin1'),
    cmdline: readFileSync(`/proc/${pid}/cmdline`, 'latin1'),
  };
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  return out;
}

describe('core dumps: aivaultd disables them whatever limit it is started with', () => {
  it('started with unlimited core dumps, it runs with RLIMIT_CORE 0 soft and hard', async () => {
    const r = await runDaemon('unlimited:unlimited');
    expect(r.limit).toBe('Max core file size 0 0 bytes');
  });

  it('started with a soft limit under an unlimited hard limit, both end at 0', async () => {
    const r = await runDaemon('1048576:unlimited');
    expect(r.limit).toBe('Max core file size 0 0 bytes');
  });

  it('started with RLIMIT_CORE=0 (ulimit -c 0 / LimitCORE=0) it stays 0', async () => {
    const r = await runDaemon('0:0');
    expect(r.limit).toBe('Max core file size 0 0 bytes');
  });

  it('started with a soft limit of 0 under a higher hard limit it never raises it', async () => {
    const r = await runDaemon('0:unlimited');
    expect(r.limit).toBe('Max core file size 0 0 bytes');
  });

  it('the key file content is not in argv or environment', async () => {
    const key = readFileSync(join(dir, 'vault', 'kek.key'), 'utf8').trim();
    const r = await runDaemon('0:0');
    expect(r.environ).not.toContain(key);
    expect(r.cmdline).not.toContain(key);
  });
});

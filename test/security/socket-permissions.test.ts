/**
 * Attack (SPEC §2, docs/protocol.md): a second OS user (another agent sandbox account) connects to the
 * operator's aivaultd socket to invoke capabilities with the operator's keys. Stopped by: the socket is
 * 0600 inside a 0700 directory (both default); `--shared` (0660/0770) only opens it to the group.
 * The test creates the user `aivault-attacker` (idempotent, root only) and connects AS that user with
 * `runuser`; a control run with a world-writable socket proves the attacker's client would work.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { startDaemon, type Daemon } from '../../src/front/main.js';
import { createDevVault, type DevVault } from '../support/dev-vault.js';
import { skipOutsideCi } from '../support/ci.js';
import { ensureUser } from './support/attack-env.js';

const USER = 'aivault-attacker';
const isRoot = process.getuid?.() === 0;
const haveUser = isRoot && ensureUser(USER);
const skip = skipOutsideCi(haveUser, 'root: a second OS user connects to the socket');

let dv: DevVault;
let base: string;
let daemon: Daemon;
let sock: string;
beforeAll(async () => {
  if (!haveUser) return;
  // /var/tmp, not os.tmpdir(): the attacker must be able to reach the directory for the control runs.
  dv = await createDevVault({
    parent: '/var/tmp',
    prefix: 'aivault-sockperm-',
    dev: false,
    env: { AIVAULT_DISABLE_DISK_LOGS: '1' },
  });
  dv.vault.close();
  base = dv.home;
  sock = dv.socketPath;
  daemon = await startDaemon(dv.config, { workers: 1, socketPath: sock });
});
afterAll(async () => {
  await daemon?.stop();
  dv?.close();
});

/** Connect to the socket as the attacker user; returns 'CONNECTED' or the errno code. */
function connectAs(path: string): string {
  const script = `require('net').connect(${JSON.stringify(path)}).on('connect',()=>{console.log('CONNECTED');process.exit(0)}).on('error',e=>{console.log(e.code);process.exit(0)})`;
  const r = spawnSync('runuser', ['-u', USER, '--', process.execPath, '-e', script], {
    encoding: 'utf8',
    timeout: 15_000,
  });
  return (r.stdout || r.stderr).trim();
}

describe.skipIf(skip)('attack: a second OS user connects to the daemon socket', () => {
  it('default modes: socket 0600 in a 0700 dir', () => {
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    expect(statSync(join(sock, '..')).mode & 0o777).toBe(0o700);
  });

  it('the attacker cannot connect (EACCES), even with every parent directory traversable', () => {
    chmodSync(base, 0o711);
    chmodSync(join(base, 'vault'), 0o711);
    expect(connectAs(sock)).toBe('EACCES'); // run dir 0700
    chmodSync(join(sock, '..'), 0o711);
    try {
      expect(connectAs(sock)).toBe('EACCES'); // socket file 0600
    } finally {
      chmodSync(join(sock, '..'), 0o700);
    }
  });

  it('control: with a world-writable socket the same attacker client connects (the test can fail)', () => {
    chmodSync(join(sock, '..'), 0o711);
    chmodSync(sock, 0o666);
    try {
      expect(connectAs(sock)).toBe('CONNECTED');
    } finally {
      chmodSync(sock, 0o600);
      chmodSync(join(sock, '..'), 0o700);
    }
  });

  it('the root daemon is reachable for root itself (sanity)', async () => {
    const { connect } = await import('../../src/core/protocol/client.js');
    const c = await connect({ socketPath: sock });
    onTestFinished(() => c.close());
    await c.ping();
  });
});

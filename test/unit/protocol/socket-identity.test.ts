import { createServer, type Server } from 'node:net';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyDaemonSocket } from '../../../src/core/protocol/socket-identity.js';
import { tmpDir } from '../../support/tmp-dir.js';

const base = tmpDir('aivault-sockid-');
const run = join(base, 'run');
const sock = join(run, 'aivaultd.sock');
let server: Server;

beforeAll(async () => {
  mkdirSync(run, { mode: 0o700 });
  chmodSync(run, 0o700);
  server = createServer();
  await new Promise<void>((r) => server.listen(sock, r));
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

async function reason(path: string, opts = {}): Promise<string> {
  const r = await verifyDaemonSocket(path, opts);
  return r.ok ? 'ok' : `${r.error.code}: ${r.error.message}`;
}

describe('verifyDaemonSocket', () => {
  it('accepts a socket we own in a 0700 dir we own', async () => {
    expect(await reason(sock)).toBe('ok');
    expect(await reason(sock, { expectedUid: process.getuid!() })).toBe('ok');
  });

  it('refuses another expected owner (system mode: the aivault user)', async () => {
    expect(await reason(sock, { expectedUid: process.getuid!() + 4242 })).toMatch(
      /^daemon_unavailable: .*owned by uid/,
    );
  });

  it('refuses a dir whose mode differs from the configured one', async () => {
    expect(await reason(sock, { dirMode: 0o770 })).toMatch(/has mode 0700, expected 0770/);
    chmodSync(run, 0o755);
    try {
      expect(await reason(sock)).toMatch(/has mode 0755, expected 0700/);
    } finally {
      chmodSync(run, 0o700);
    }
  });

  it('refuses a symlink at the socket path, and a symlinked dir', async () => {
    const other = join(base, 'squat');
    mkdirSync(other, { mode: 0o700 });
    chmodSync(other, 0o700);
    symlinkSync(sock, join(other, 'aivaultd.sock'));
    expect(await reason(join(other, 'aivaultd.sock'))).toMatch(/it is a symlink/);
    symlinkSync(run, join(base, 'linked-run'));
    expect(await reason(join(base, 'linked-run', 'aivaultd.sock'))).toMatch(/linked-run is a symlink/);
  });

  it('refuses a regular file and a missing socket', async () => {
    writeFileSync(join(run, 'plain'), 'x');
    expect(await reason(join(run, 'plain'))).toMatch(/not a socket/);
    expect(await reason(join(run, 'missing.sock'))).toMatch(/nothing is there/);
    expect(await reason(join(base, 'nodir', 's.sock'))).toMatch(/does not exist/);
  });
});

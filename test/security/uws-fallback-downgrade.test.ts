/**
 * Downgrade by environment: the uWebSockets.js package entry silently swaps in a pure-Node fallback server
 * (built on a pinned ws@8.13.0 with a known high-severity DoS, GHSA-3h5v-q93c-6h6q) when UWS_USE_FALLBACK is
 * set or its native binary does not load. Anyone who can set the daemon's environment (a launcher, an agent
 * that autostarts it) could pick a different front end than the one we test and benchmark. aivaultd loads
 * the native binary itself (src/front/uws.ts) and refuses to start without it.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DAEMON } from '../support/run-cli.js';
import { nativeUwsPath } from '../../src/front/uws.js';
import { connect } from '../../src/core/protocol/client.js';

const dir = mkdtempSync(join(tmpdir(), 'aivault-uws-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Run {
  code: number | null;
  out: string;
  maps?: string;
  served?: boolean;
}

/** Start aivaultd with `env` and `nodeArgs`; if it comes up, read its memory maps and talk to it once. */
async function runDaemon(tag: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<Run> {
  const sock = join(dir, `${tag}.sock`);
  const child = spawn(process.execPath, [...nodeArgs, DAEMON, '--socket', sock, '--workers', '1'], {
    env: { ...process.env, AIVAULT_DIR: join(dir, 'vault'), HOME: dir, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  const up = new Promise<boolean>((resolve) => {
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (out.includes('listening')) resolve(true);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then(() => resolve(false));
  });
  if (!(await up)) return { code: await exited, out };
  const maps = readFileSync(`/proc/${child.pid!}/maps`, 'utf8');
  const client = await connect({ socketPath: sock });
  client.close();
  child.kill('SIGTERM');
  return { code: await exited, out, maps, served: true };
}

describe('uWS fallback downgrade: aivaultd always runs the native uWebSockets.js server', () => {
  it('UWS_USE_FALLBACK=1 in the environment does not switch the front end', async () => {
    const r = await runDaemon('env', { UWS_USE_FALLBACK: '1' });
    expect(r.served, r.out).toBe(true);
    // The native addon is mapped into the daemon; the fallback would never load it.
    expect(r.maps).toContain(realpathSync(nativeUwsPath()));
    expect(r.out).not.toMatch(/fallback/i);
    expect(r.code).toBe(0);
  });

  it('without a native binary for this Node, it refuses to start with a clear error (no stack trace)', async () => {
    // Pretend to be a Node ABI no binary was built for: what a Node upgrade past the package looks like.
    const preload = 'data:text/javascript,Object.defineProperty(process.versions,"modules",{value:"1"})';
    const r = await runDaemon('abi', {}, ['--import', preload]);
    expect(r.code).toBe(1);
    expect(r.out).toContain(
      `aivaultd: internal: uWebSockets.js has no native binary for ${process.platform}-${process.arch} (Node ABI 1); aivaultd does not run on its pure-Node fallback`,
    );
    expect(r.out).not.toMatch(/\n\s+at /);
    expect(r.out).not.toMatch(/Falling back|performance may be degraded/);
  });
});

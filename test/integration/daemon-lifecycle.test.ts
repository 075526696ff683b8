import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, startDaemon } from '../../src/front/main.js';
import { connect } from '../../src/core/protocol/client.js';
import { envelope, startFixture, type DaemonFixture } from './daemon-fixture.js';

let fx: DaemonFixture;
beforeAll(async () => {
  fx = await startFixture({ workers: 1 });
}, 60_000);
afterAll(() => fx?.close());

function freshSocket(): string {
  return join(mkdtempSync(join(tmpdir(), 'aivaultd-sock-')), 'run', 'd.sock');
}

describe('aivaultd lifecycle', () => {
  it('creates the socket 0600 in a 0700 dir and writes a pid file', () => {
    const sock = fx.daemon.socketPath;
    expect(statSync(sock).mode & 0o777).toBe(0o600);
    expect(statSync(join(sock, '..')).mode & 0o777).toBe(0o700);
    expect(readFileSync(join(sock, '..', 'aivaultd.pid'), 'utf8').trim()).toBe(String(process.pid));
  });

  it('refuses to start while another daemon listens on the socket', async () => {
    await expect(
      startDaemon(fx.config, { workers: 1, socketPath: fx.daemon.socketPath }),
    ).rejects.toMatchObject({ code: 'conflict' });
    expect((await fx.client.invoke(envelope('/still-up'))).status).toBe(200);
  });

  it('removes a stale socket file left by a killed process', async () => {
    const sock = freshSocket();
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(sock, '..'), { recursive: true, mode: 0o700 });
    const child = spawn(process.execPath, [
      '-e',
      `require('node:net').createServer().listen(${JSON.stringify(sock)}, () => console.log('up'))`,
    ]);
    await new Promise((r) => child.stdout.once('data', r));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    expect(existsSync(sock)).toBe(true);
    const d = await startDaemon(fx.config, { workers: 1, socketPath: sock });
    onTestFinished(() => d.stop()); // idempotent: the test's own stop below is what it asserts on
    const c = await connect({ socketPath: sock });
    onTestFinished(() => c.close());
    await c.ping();
    c.close();
    await d.stop();
    expect(existsSync(sock)).toBe(false);
  }, 30_000);

  it('--shared uses 0660 / 0770', async () => {
    const sock = freshSocket();
    const d = await startDaemon(fx.config, { workers: 1, socketPath: sock, shared: true });
    onTestFinished(() => d.stop());
    expect(statSync(sock).mode & 0o777).toBe(0o660);
    expect(statSync(join(sock, '..')).mode & 0o777).toBe(0o770);
  }, 30_000);

  it('--once serves one connection, then stops', async () => {
    const sock = freshSocket();
    const d = await startDaemon(fx.config, { workers: 1, socketPath: sock, once: true });
    onTestFinished(() => d.stop());
    const c = await connect({ socketPath: sock });
    expect((await c.invoke(envelope('/once'))).status).toBe(200);
    await expect(connect({ socketPath: sock })).rejects.toMatchObject({ code: 'daemon_unavailable' });
    c.close();
    await d.stopped;
  }, 30_000);

  it('graceful stop lets an in-flight stream finish and refuses new connections', async () => {
    const sock = freshSocket();
    const d = await startDaemon(fx.config, { workers: 1, socketPath: sock, shutdownDeadlineMs: 5000 });
    onTestFinished(() => d.stop());
    const c = await connect({ socketPath: sock });
    onTestFinished(() => c.close());
    await c.invoke(envelope('/warm'));
    const s = c.stream(envelope('/sse?n=3&interval=200'));
    await s.head;
    const stopping = d.stop();
    await expect(connect({ socketPath: sock })).rejects.toMatchObject({ code: 'daemon_unavailable' });
    let text = '';
    for await (const chunk of s.body) text += Buffer.from(chunk).toString();
    expect(text.match(/data: /g)).toHaveLength(3);
    await stopping;
  }, 30_000);

  it('SIGTERM shuts the real binary down cleanly (socket and pid file removed)', async () => {
    const sock = freshSocket();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/front/main.ts', '--socket', sock, '--workers', '1'],
      {
        env: { ...process.env, HOME: fx.config.homeDir, AIVAULT_DIR: fx.config.vaultDir },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let err = '';
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        if (err.includes('listening')) resolve();
      });
      child.once('exit', () => reject(new Error(`daemon exited early: ${err}`)));
    });
    expect(existsSync(join(sock, '..', 'aivaultd.pid'))).toBe(true);
    child.kill('SIGTERM');
    const code = await new Promise((r) => child.once('exit', r));
    expect(code).toBe(0);
    expect(existsSync(sock)).toBe(false);
    expect(existsSync(join(sock, '..', 'aivaultd.pid'))).toBe(false);
  }, 60_000);

  it.each([
    [['--socket', '/x.sock', '--once'], { socketPath: '/x.sock', once: true }],
    [['--shared', '--workers', '3'], { shared: true, workers: 3 }],
    [['--socket=/y.sock'], { socketPath: '/y.sock' }],
  ])('parses %j', (argv, options) => {
    expect(parseArgs(argv)).toEqual({ help: false, options });
  });

  it.each([[['--workers', '0']], [['--bogus']], [['--socket']]])('rejects %j as usage', (argv) => {
    expect(() => parseArgs(argv)).toThrowError(expect.objectContaining({ code: 'usage' }));
  });
});

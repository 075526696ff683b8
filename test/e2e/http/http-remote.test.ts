/**
 * Loopback-only by default. The listener binds 0.0.0.0 with allow-remote OFF and we connect from this
 * machine's non-loopback address (found with os.networkInterfaces(); the test is skipped when the machine
 * has none). Also the pure peer check.
 */
import { networkInterfaces } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  isLoopbackPeer,
  parseListenAddress,
  extractToken,
  splitPassthroughPath,
} from '../../../src/front/http-passthrough.js';
import { startHttpFixture, type HttpFixture } from './http-fixture.js';
import { parseArgs } from '../../../src/front/main.js';
import { loadConfig } from '../../../src/core/config/env.js';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { DAEMON, isolatedEnv } from '../../support/run-cli.js';
import { tmpDir } from '../../support/tmp-dir.js';

/** Run the built aivaultd with a deadline; a daemon that does start is killed (and the test fails). */
function runDaemonOnce(
  args: readonly string[],
  env: Record<string, string>,
): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DAEMON, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGTERM'), 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stderr });
    });
  });
}

const external = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;

describe('peer check (pure)', () => {
  it('accepts loopback and unix peers only', () => {
    for (const a of [
      '',
      '127.0.0.1',
      '127.8.9.10',
      '::1',
      '0000:0000:0000:0000:0000:0000:0000:0001',
      '::ffff:127.0.0.1',
      '0000:0000:0000:0000:0000:ffff:7f00:0001',
    ]) {
      expect(isLoopbackPeer(a)).toBe(true);
    }
    for (const a of [
      '192.0.2.2',
      '10.0.0.1',
      '::ffff:10.0.0.1',
      'fe80::1',
      '0.0.0.0',
      'garbage',
      '169.254.169.254',
    ]) {
      expect(isLoopbackPeer(a)).toBe(false);
    }
  });
  it('remembered answers stay right: asked again, and past the cache bound', () => {
    for (let round = 0; round < 2; round++) {
      expect(isLoopbackPeer('127.0.0.1')).toBe(true);
      expect(isLoopbackPeer('10.0.0.1')).toBe(false);
      for (let i = 0; i < 300; i++) {
        expect(isLoopbackPeer(`127.0.${i >> 8}.${i & 255}`)).toBe(true);
        expect(isLoopbackPeer(`10.1.${i >> 8}.${i & 255}`)).toBe(false);
      }
    }
  });
  it('aivaultd --http / --http-allow-remote and AIVAULTD_HTTP*', () => {
    expect(parseArgs(['--http', '127.0.0.1:0', '--http-allow-remote']).options).toEqual({
      http: '127.0.0.1:0',
      httpAllowRemote: true,
    });
    expect(parseArgs(['--http=[::1]:19790']).options).toEqual({ http: '[::1]:19790' });
    const c = loadConfig({
      HOME: '/tmp/x',
      AIVAULTD_HTTP: '127.0.0.1:19790',
      AIVAULTD_HTTP_ALLOW_REMOTE: '1',
    });
    expect(c.httpListen).toBe('127.0.0.1:19790');
    expect(c.httpAllowRemote).toBe(true);
    const d = loadConfig({ HOME: '/tmp/x' });
    expect(d.httpListen).toBeUndefined();
    expect(d.httpAllowRemote).toBe(false);
  });

  it('parses listen addresses', () => {
    expect(parseListenAddress('127.0.0.1:19790')).toEqual({ host: '127.0.0.1', port: 19790 });
    expect(parseListenAddress('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parseListenAddress('19790')).toEqual({ host: '127.0.0.1', port: 19790 });
    expect(() => parseListenAddress('example.com:80')).toThrow(/IP address/);
    expect(() => parseListenAddress('127.0.0.1:99999')).toThrow();
  });
  it('extracts the proxy token where SDKs put their key', () => {
    expect(extractToken({ authorization: 'Bearer avp_x' }, true)).toBe('avp_x');
    expect(extractToken({ 'x-api-key': 'avp_y' }, true)).toBe('avp_y');
    expect(extractToken({ 'x-goog-api-key': 'avp_z' }, true)).toBe('avp_z');
    expect(extractToken({ 'x-api-key': 'avp_y' }, false)).toBeUndefined();
    expect(splitPassthroughPath('/v/openai/v1/chat')).toEqual({ credential: 'openai', rest: '/v1/chat' });
    expect(splitPassthroughPath('/v/openai')).toEqual({ credential: 'openai', rest: '/' });
    expect(splitPassthroughPath('/v/')).toBeUndefined();
  });
});

describe('a non-loopback listen address needs --http-allow-remote', () => {
  // Refusing peers after accept is not enough: the port would still be open on every interface.
  it.each([
    ['--http flag', ['--http', '0.0.0.0:0'], {}],
    ['--http with [::]', ['--http', '[::]:0'], {}],
    ['AIVAULTD_HTTP', [], { AIVAULTD_HTTP: '0.0.0.0:0' }],
  ])('aivaultd refuses to start (%s) and names the flag', async (_name, args, extra) => {
    const dir = join(tmpDir(), 'vault');
    const res = await runDaemonOnce(args, isolatedEnv(dir, extra));
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('--http-allow-remote');
    expect(res.stderr).not.toContain('listening on');
  });
});

describe.skipIf(!external)('non-loopback peer with --http-allow-remote', () => {
  let fx: HttpFixture;
  beforeAll(async () => {
    fx = await startHttpFixture({ http: '0.0.0.0:0', httpAllowRemote: true });
  }, 60_000);
  afterAll(() => fx?.close());

  it('is served (a token is still required)', async () => {
    const port = fx.daemon.http?.port;
    const noToken = await fetch(`http://${external}:${port}/v/echo/x`);
    expect(noToken.status).toBe(401);
    await noToken.text();
    const token = await fx.mint({ capabilities: ['echo/api'] });
    const res = await fetch(`http://${external}:${port}/v/echo/x`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.status).toBe(200);
    await res.text();
  });
});

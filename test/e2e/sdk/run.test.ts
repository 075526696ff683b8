/**
 * `aivault run -- node sdk-call.mjs both` through the COMPILED CLI (needs `npm run build`): the CLI mints a
 * token, autostarts aivaultd with the HTTP listener, and runs the unchanged SDK script, which prints its
 * whole environment. No vault secret, no AIVAULT_KEY, no AIVAULT_DIR in it; both SDK calls succeed and the
 * mock upstream got the real keys.
 */
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isolatedEnv, registerSecret, runCli } from '../../support/run-cli.js';
import { stopDaemon } from '../../../src/cli/commands/daemon.js';
import { listTokens } from '../../../src/stores/tokens/tokens.js';
import {
  ANTHROPIC_SECRET,
  ECHO_SECRET,
  OPENAI_SECRET,
  prepareVault,
  type PreparedVault,
} from '../http/http-fixture.js';

const SCRIPT = resolve('test/e2e/sdk/scripts/sdk-call.mjs');
const FAKE_KEK = Buffer.alloc(32, 9).toString('base64');

let pv: PreparedVault;
let env: Record<string, string>;
beforeAll(async () => {
  pv = await prepareVault();
  for (const s of [OPENAI_SECRET, ANTHROPIC_SECRET, ECHO_SECRET]) registerSecret(s);
  env = isolatedEnv(pv.config.vaultDir, {
    HOME: pv.home,
    AIVAULTD_SOCKET: join(pv.home, 'run', 'aivaultd.sock'),
    AIVAULTD_HTTP: '127.0.0.1:0',
    AIVAULTD_WORKERS: '1',
    AIVAULT_DEV_RESOLVE: pv.env.AIVAULT_DEV_RESOLVE,
    AIVAULT_DEV_CA_CERT_PATH: pv.env.AIVAULT_DEV_CA_CERT_PATH,
    AIVAULT_DEV_HTTP1_ONLY: '1',
    // Things the child must NOT inherit: a real key in the parent env and a key-provider variable.
    OPENAI_API_KEY: OPENAI_SECRET,
    AIVAULT_KEY: FAKE_KEK,
  });
}, 60_000);

afterAll(async () => {
  await stopDaemon(join(pv.home, 'run', 'aivaultd.sock')).catch(() => undefined);
  pv.vault.close();
  await pv.upstream.close();
});

describe('aivault run', () => {
  it('runs an unchanged SDK program with only a proxy token in its environment', async () => {
    const before = pv.upstream.requests.length;
    // --no-proxy: the base-URL mode (the HTTPS proxy mode is test/e2e/https-proxy/https-proxy.test.ts).
    const r = await runCli(['run', '--no-proxy', '--', process.execPath, SCRIPT, 'both'], {
      env,
      timeoutMs: 60_000,
    });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop() as string) as {
      env: Record<string, string>;
      openai: { normal: string; streamed: string };
      anthropic: { normal: string; streamed: string };
    };
    const childEnv = JSON.stringify(out.env);
    for (const secret of [OPENAI_SECRET, ANTHROPIC_SECRET, ECHO_SECRET, FAKE_KEK]) {
      expect(childEnv).not.toContain(secret);
    }
    expect(
      Object.keys(out.env).filter(
        (k) => k.startsWith('AIVAULT_') && k !== 'AIVAULT_BASE_URL' && k !== 'AIVAULT_TOKEN',
      ),
    ).toEqual([]);
    expect(out.env.AIVAULT_TOKEN).toMatch(/^avp_/);
    expect(out.env.AIVAULT_BASE_URL).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(out.env.OPENAI_API_KEY).toBe(out.env.AIVAULT_TOKEN);
    expect(out.env.ANTHROPIC_API_KEY).toBe(out.env.AIVAULT_TOKEN);
    expect(out.env.OPENAI_BASE_URL).toBe(`${out.env.AIVAULT_BASE_URL}/v/openai/v1`);
    expect(out.env.ANTHROPIC_BASE_URL).toBe(`${out.env.AIVAULT_BASE_URL}/v/anthropic`);
    expect(out.openai.normal).toBe('Hello from the mock');
    expect(out.openai.streamed).toBe('Hello from the mock');
    expect(out.anthropic.normal).toBe('Hello from the mock');
    expect(out.anthropic.streamed).toBe('Hello from the mock');
    const seen = pv.upstream.requests.slice(before);
    expect(seen.filter((s) => s.headers.authorization === `Bearer ${OPENAI_SECRET}`)).toHaveLength(2);
    expect(seen.filter((s) => s.headers['x-api-key'] === ANTHROPIC_SECRET)).toHaveLength(2);
    // the token was revoked when the command exited
    expect((await listTokens(pv.config.vaultDir)).some((t) => t.kind === 'proxy')).toBe(false);
  }, 90_000);

  it('propagates the exit code and scopes the token to --capability', async () => {
    const r = await runCli(
      [
        'run',
        '--no-proxy',
        '--capability',
        'anthropic/messages',
        '--',
        process.execPath,
        '-e',
        'process.stdout.write(JSON.stringify({o: process.env.OPENAI_API_KEY ?? null, a: process.env.ANTHROPIC_API_KEY ?? null})); process.exit(3)',
      ],
      { env, timeoutMs: 60_000 },
    );
    expect(r.code).toBe(3);
    const out = JSON.parse(r.stdout) as { o: string | null; a: string | null };
    expect(out.o).toBeNull(); // openai is not granted: no OpenAI variables (and the real key was removed)
    expect(out.a).toMatch(/^avp_/);
  }, 60_000);

  it('restarts a daemon that runs without the HTTP listener', async () => {
    await stopDaemon(join(pv.home, 'run', 'aivaultd.sock'));
    const noHttp = { ...env };
    delete noHttp.AIVAULTD_HTTP;
    const restarted = await runCli(['restart'], { env: noHttp });
    expect(restarted.code, restarted.stderr).toBe(0);
    const r = await runCli(
      ['run', '--', process.execPath, '-e', 'process.stdout.write(process.env.AIVAULT_BASE_URL)'],
      {
        env,
        timeoutMs: 60_000,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('restarting aivaultd');
    expect(r.stdout).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  }, 90_000);

  it('says so when the token cannot be revoked at exit (it would stay live until its TTL)', async () => {
    const tokens = join(pv.config.vaultDir, 'tokens.json');
    const r = await runCli(
      [
        'run',
        '--',
        process.execPath,
        '-e',
        'require("node:fs").writeFileSync(process.argv[1], "{not json")',
        tokens,
      ],
      { env, timeoutMs: 60_000 },
    );
    await rm(tokens, { force: true });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/proxy token \S+ was not revoked/);
    expect(r.stderr).toContain('aivault token revoke');
  }, 60_000);

  it('token mint prints a token once; token list never shows it', async () => {
    const r = await runCli(
      ['token', 'mint', '--capability', 'openai/chat-completions', '--ttl', '5m', '-v'],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    const minted = JSON.parse(r.stdout) as { token: string; id: string; expiresAtMs: number };
    expect(minted.token).toMatch(/^avp_/);
    expect(minted.expiresAtMs - Date.now()).toBeLessThanOrEqual(5 * 60_000);
    const list = await runCli(['token', 'list', '-v'], { env });
    expect(list.stdout).toContain(minted.id);
    expect(list.stdout).not.toContain(minted.token);
    const bad = await runCli(['token', 'mint', '--capability', 'nope/nothing'], { env });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('capability_not_found');
    const op = await runCli(['token', 'operator', 'create', '--name', 'ci', '-v'], { env });
    expect((JSON.parse(op.stdout) as { token: string }).token).toMatch(/^avo_/);
  }, 60_000);
});

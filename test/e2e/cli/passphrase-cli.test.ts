// A passphrase vault end to end: writes ask for the passphrase on the terminal (a real pty via `script`),
// `unlock` unlocks aivaultd's crypto worker, invocations work until `lock`, then fail with vault_unavailable.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopDaemon } from '../../../src/cli/commands/daemon.js';
import { startHttpsUpstream, type HttpsUpstream } from '../../support/https-upstream.js';
import { createTestCa } from '../../support/test-ca.js';
import { CLI, assertNoSecret, isolatedEnv, registerSecret, runCli } from '../../support/run-cli.js';
import { tmpDir } from '../../support/tmp-dir.js';

const PASS = registerSecret('correct horse battery staple');
const KEY = registerSecret('sk-passphrase-vault-key-4242');
let upstream: HttpsUpstream;
let env: Record<string, string>;
let vaultDir: string;

/** Run the CLI under a pseudo-terminal and type `typed` at its prompt. */
function runInPty(args: string[], typed: string): Promise<{ code: number; out: string }> {
  const cmd = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const child = spawn('script', ['-qec', cmd, '/dev/null'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('passphrase:') && typed) {
      child.stdin.write(`${typed}\r`);
      typed = '';
    }
  });
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) =>
    child.on('close', (code) => {
      assertNoSecret(out.replace(PASS, ''), `pty output of aivault ${args.join(' ')}`);
      resolve({ code: code ?? -1, out });
    }),
  );
}

beforeAll(async () => {
  upstream = await startHttpsUpstream();
  vaultDir = join(tmpDir(), 'vault');
  env = isolatedEnv(vaultDir, {
    AIVAULT_DEV_RESOLVE: `api.openai.com=127.0.0.1:${upstream.port}`,
    AIVAULT_DEV_CA_CERT_PATH: createTestCa().caCertPath,
  });
  const init = await runCli(['init', '--provider', 'passphrase', '--passphrase', PASS, '--dev'], { env });
  expect(init.code, init.stderr).toBe(0);
});

afterAll(async () => {
  await stopDaemon(join(vaultDir, 'run', 'aivaultd.sock')).catch(() => undefined);
  await upstream.close();
});

describe('passphrase vault', () => {
  it('refuses a write without a terminal, with a clear error', async () => {
    const res = await runCli(['secrets', 'create', '--name', 'OPENAI_API_KEY', '--value', KEY, '-v'], {
      env,
    });
    expect(res.code).toBe(1);
    expect(JSON.parse(res.stderr)).toMatchObject({ error: 'operator_auth_required' });
  });

  it('asks for the passphrase on the terminal and encrypts', async () => {
    const res = await runInPty(['secrets', 'create', '--name', 'OPENAI_API_KEY', '--value', KEY], PASS);
    expect(res.code, res.out).toBe(0);
    expect(res.out).toContain('Credential auto-provisioned: openai');
    expect(res.out).not.toContain(PASS);
  });

  it('a wrong passphrase is refused and never reaches the daemon', async () => {
    const res = await runCli(['unlock', '--passphrase', 'wrong passphrase', '-v'], { env });
    expect(res.code).toBe(1);
    expect(JSON.parse(res.stderr)).toMatchObject({ error: 'vault_unavailable' });
  });

  it('invokes after unlock, and fails with vault_unavailable after lock', async () => {
    const locked = await runCli(
      ['invoke', 'openai/models', '--method', 'GET', '--path', '/v1/models', '-v'],
      { env },
    );
    expect(JSON.parse(locked.stderr)).toMatchObject({ error: 'vault_unavailable' });

    expect((await runCli(['unlock', '--passphrase', PASS], { env })).code).toBe(0);
    const status = await runCli(['status'], { env });
    expect(status.stdout).toContain('unlocked in aivaultd');
    const before = upstream.requests.length;
    const ok = await runCli(
      [
        'invoke',
        'openai/models',
        '--method',
        'GET',
        '--path',
        '/v1/models',
        '--header',
        'x-echo-headers=omit',
      ],
      { env },
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect(upstream.requests[before]?.headers.authorization).toBe(`Bearer ${KEY}`);

    expect((await runCli(['lock'], { env })).code).toBe(0);
    const after = await runCli(['invoke', 'openai/models', '--method', 'GET', '--path', '/v1/models', '-v'], {
      env,
    });
    expect(after.code).toBe(1);
    expect(JSON.parse(after.stderr)).toMatchObject({ error: 'vault_unavailable' });
  });
});

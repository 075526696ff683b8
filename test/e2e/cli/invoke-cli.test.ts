// `aivault invoke|json|markdown` as an agent runs it: real CLI processes, an autostarted aivaultd on a real
// unix socket, a real HTTPS upstream on 127.0.0.1 (throwaway CA). Every case runs through the daemon AND
// in-process (AIVAULTD_DISABLE=1) and must give the same result. run-cli asserts no output holds the key.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopDaemon } from '../../../src/cli/commands/daemon.js';
import { startHttpsUpstream, type HttpsUpstream } from '../../support/https-upstream.js';
import { createTestCa } from '../../support/test-ca.js';
import { CLI, isolatedEnv, registerSecret, runCli } from '../../support/run-cli.js';
import { tmpDir } from '../../support/tmp-dir.js';
import { spawn } from 'node:child_process';

const KEY = registerSecret('sk-live-e2e-invoke-7f3a9c1b2d4e');
let upstream: HttpsUpstream;
let env: Record<string, string>;
let vaultDir: string;

beforeAll(async () => {
  upstream = await startHttpsUpstream();
  const ca = createTestCa();
  vaultDir = join(tmpDir(), 'vault');
  env = isolatedEnv(vaultDir, {
    AIVAULT_DEV_RESOLVE: `api.openai.com=127.0.0.1:${upstream.port}`,
    AIVAULT_DEV_CA_CERT_PATH: ca.caCertPath,
  });
  expect((await runCli(['init', '--dev'], { env })).code).toBe(0);
  const created = await runCli(['secrets', 'create', '--name', 'OPENAI_API_KEY', '--value-stdin'], {
    env,
    input: KEY,
  });
  expect(created.stdout).toContain('Credential auto-provisioned: openai');
});

afterAll(async () => {
  await stopDaemon(join(vaultDir, 'run', 'aivaultd.sock')).catch(() => undefined);
  await upstream.close();
});

const modes = [
  ['daemon', {}],
  ['in-process', { AIVAULTD_DISABLE: '1' }],
] as const;

describe.each(modes)('invoke via %s', (_name, extra) => {
  const run = (args: string[], input?: string) =>
    runCli(args, { env: { ...env, ...extra }, input, timeoutMs: 30_000 });

  it('injects the key on the wire; the output has the body but not the key nor any upstream header', async () => {
    const before = upstream.requests.length;
    const res = await run([
      'json',
      'openai/chat-completions',
      '--header',
      'content-type=application/json',
      '--body',
      '{"model":"m","messages":[]}',
      '--header',
      'x-echo-headers=omit',
    ]);
    expect(res.code, res.stderr).toBe(0);
    const seen = upstream.requests.slice(before);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(seen[0]?.method).toBe('POST');
    expect(JSON.parse(res.stdout)).toMatchObject({ object: 'chat.completion' });

    const leaky = await run([
      'invoke',
      'openai/chat-completions',
      '--method',
      'GET',
      '--path',
      '/v1/chat/completions/leaky-headers',
      '--header',
      'x-echo-headers=omit',
      '-v',
    ]);
    expect(leaky.code, leaky.stderr).toBe(0);
    for (const h of ['set-cookie', 'x-upstream', 'www-authenticate'])
      expect(leaky.stdout.toLowerCase()).not.toContain(h);
  });

  it.each([
    [
      'caller Authorization',
      ['--header', 'authorization=Bearer attacker', '--body', '{}'],
      'policy_violation',
    ],
    ['caller x-api-key', ['--header', 'x-api-key=attacker', '--body', '{}'], 'policy_violation'],
    ['dot-dot traversal', ['--path', '/v1/chat/completions/../../admin', '--body', '{}'], 'policy_violation'],
    [
      'encoded traversal',
      ['--path', '/v1/chat/completions/%2e%2e/%2e%2e/admin', '--body', '{}'],
      'policy_violation',
    ],
    ['encoded slash', ['--path', '/v1/chat/completions%2f..%2fadmin', '--body', '{}'], 'policy_violation'],
    ['method not allowed', ['--method', 'PUT', '--body', '{}'], 'policy_violation'],
    ['path outside prefix', ['--path', '/v1/files', '--body', '{}'], 'policy_violation'],
    ['prefix boundary', ['--path', '/v1/chat/completionsX', '--body', '{}'], 'policy_violation'],
    [
      'url field',
      ['--request', '{"method":"POST","path":"/v1/chat/completions","url":"https://evil.example/"}'],
      'policy_violation',
    ],
    [
      'two body modes',
      ['--request', '{"method":"POST","path":"/v1/chat/completions","body":"a","bodyBase64":"YQ=="}'],
      'invalid_request',
    ],
    [
      'unknown field',
      ['--request', '{"method":"POST","path":"/v1/chat/completions","evil":1}'],
      'invalid_request',
    ],
  ])('rejects %s before any upstream traffic', async (_label, args, code) => {
    const before = upstream.requests.length;
    const res = await run(['invoke', 'openai/chat-completions', ...args, '-v']);
    expect(res.code).toBe(1);
    expect(JSON.parse(res.stderr)).toMatchObject({ error: code });
    expect(upstream.requests.length).toBe(before);
  });

  it('an unknown capability is capability_not_found', async () => {
    const res = await run(['invoke', 'openai/nope', '--method', 'GET', '--path', '/v1/x', '-v']);
    expect(res.code).toBe(1);
    expect(JSON.parse(res.stderr)).toMatchObject({ error: 'capability_not_found' });
  });

  it('an upstream error status exits 1 and still prints the body', async () => {
    const res = await run([
      'invoke',
      'openai/models',
      '--method',
      'GET',
      '--path',
      '/v1/models/status/404',
      '--header',
      'x-echo-headers=omit',
    ]);
    expect(res.code).toBe(1);
    expect(res.stdout).toContain('"path"');
    expect(res.stderr).toContain('HTTP 404');
  });

  it('markdown output shapes the JSON body', async () => {
    const res = await run([
      'md',
      'openai/models',
      '--method',
      'GET',
      '--path',
      '/v1/models',
      '--namespace',
      'data',
      '--header',
      'x-echo-headers=omit',
    ]);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^<begin data>\n# Method\n\nGET/);
  });
});

describe('streaming and scale through aivaultd', () => {
  it('the first SSE event reaches the CLI before the upstream finishes', async () => {
    const child = spawn(
      process.execPath,
      [
        CLI,
        'invoke',
        'openai/chat-completions',
        '--stream',
        '--method',
        'POST',
        '--path',
        '/v1/chat/completions/sse?n=4&interval=300',
      ],
      { env },
    );
    const started = Date.now();
    let firstAt = 0;
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      if (!firstAt && d.toString().includes('data:')) firstAt = Date.now() - started;
      out += d.toString();
    });
    const code = await new Promise<number>((r) => child.on('close', (c) => r(c ?? -1)));
    const total = Date.now() - started;
    expect(code).toBe(0);
    expect(out.match(/^data:/gm)).toHaveLength(4);
    // Events are 300 ms apart: the first must arrive well before the last (≥ 900 ms later).
    expect(firstAt).toBeGreaterThan(0);
    expect(total - firstAt).toBeGreaterThanOrEqual(700);
  });

  it('--stream without the daemon is a clear usage error', async () => {
    const res = await runCli(['invoke', 'openai/chat-completions', '--stream', '--body', '{}', '-v'], {
      env: { ...env, AIVAULTD_DISABLE: '1' },
    });
    expect(res.code).toBe(2);
    expect(JSON.parse(res.stderr)).toMatchObject({ error: 'usage' });
  });

  it('50 concurrent CLI processes all succeed', async () => {
    const before = upstream.requests.length;
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        runCli(
          [
            'invoke',
            'openai/models',
            '--method',
            'GET',
            '--path',
            `/v1/models/m${i}`,
            '--header',
            'x-echo-headers=omit',
          ],
          {
            env,
            timeoutMs: 90_000,
          },
        ),
      ),
    );
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    expect(upstream.requests.length - before).toBe(50);
  }, 120_000);

  it('with autostart off and no daemon, the error says how to start it', async () => {
    const res = await runCli(['invoke', 'openai/models', '--method', 'GET', '--path', '/v1/models', '-v'], {
      env: { ...env, AIVAULTD_AUTOSTART: '0', AIVAULTD_SOCKET: join(vaultDir, 'run', 'none.sock') },
    });
    expect(res.code).toBe(1);
    expect(JSON.parse(res.stderr)).toMatchObject({ error: 'daemon_unavailable' });
    expect(JSON.parse(res.stderr).message).toContain('AIVAULTD_AUTOSTART=0');
  });

  it('restart replaces the daemon and invocations keep working', async () => {
    const res = await runCli(['restart', '-v'], { env });
    expect(res.code, res.stderr).toBe(0);
    const { pid } = JSON.parse(res.stdout) as { pid: number };
    expect(pid).toBeGreaterThan(1);
    const again = await runCli(
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
      {
        env,
      },
    );
    expect(again.code, again.stderr).toBe(0);
  });

  it('rotate-master swaps the KEK; the running daemon and in-process calls keep decrypting', async () => {
    const before = JSON.parse((await runCli(['status', '-v'], { env })).stdout) as { kekFingerprint: string };
    const newKey = registerSecret(randomBytes(32).toString('base64'));
    const rotated = await runCli(['rotate-master', '--new-key', newKey], { env });
    expect(rotated.code, rotated.stderr).toBe(0);
    const after = JSON.parse((await runCli(['status', '-v'], { env })).stdout) as { kekFingerprint: string };
    expect(after.kekFingerprint).not.toBe(before.kekFingerprint);
    expect(readFileSync(join(vaultDir, 'kek.key'), 'utf8').trim()).toBe(newKey);
    for (const extra of [{}, { AIVAULTD_DISABLE: '1' }]) {
      const seen = upstream.requests.length;
      const res = await runCli(
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
        { env: { ...env, ...extra } },
      );
      expect(res.code, res.stderr).toBe(0);
      expect(upstream.requests[seen]?.headers.authorization).toBe(`Bearer ${KEY}`);
    }
  });
});

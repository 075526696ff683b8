// A passphrase vault run by a script or an agent's operator tooling: no terminal anywhere (stdin is a
// pipe). Everything that needs the key is served by aivaultd, with the passphrase on stdin.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopDaemon } from '../../../src/cli/commands/daemon.js';
import { startHttpsUpstream, type HttpsUpstream } from '../../support/https-upstream.js';
import { createTestCa } from '../../support/test-ca.js';
import { isolatedEnv, registerSecret, runCli } from '../../support/run-cli.js';
import { tmpDir } from '../../support/tmp-dir.js';

const PASS = registerSecret('scripted passphrase 1');
const NEW_PASS = registerSecret('scripted passphrase 2');
const KEY = registerSecret('sk-scripted-openai-11223344');
const KEY2 = registerSecret('sk-scripted-openai-rotated-55667788');
let upstream: HttpsUpstream;
let env: Record<string, string>;
let vaultDir: string;

const cli = (args: string[], input?: string) =>
  runCli(args, { env, ...(input !== undefined ? { input } : {}) });
const invokeModels = () =>
  cli([
    'invoke',
    'openai/models',
    '--method',
    'GET',
    '--path',
    '/v1/models',
    '--header',
    'x-echo-headers=omit',
    '-v',
  ]);

beforeAll(async () => {
  upstream = await startHttpsUpstream();
  vaultDir = join(tmpDir(), 'vault');
  env = isolatedEnv(vaultDir, {
    AIVAULT_DEV_RESOLVE: `api.openai.com=127.0.0.1:${upstream.port}`,
    AIVAULT_DEV_CA_CERT_PATH: createTestCa().caCertPath,
  });
  expect((await cli(['init', '--provider', 'passphrase', '--passphrase', PASS, '--dev'])).code).toBe(0);
});

afterAll(async () => {
  await stopDaemon(join(vaultDir, 'run', 'aivaultd.sock')).catch(() => undefined);
  await upstream.close();
});

describe('passphrase vault without a terminal', () => {
  it('unlock --passphrase-stdin; status tells one truth: unlocked, key held by aivaultd', async () => {
    const u = await cli(['unlock', '--passphrase-stdin'], `${PASS}\n`);
    expect(u.code, u.stderr).toBe(0);
    const st = JSON.parse((await cli(['status', '-v'])).stdout) as Record<string, unknown>;
    expect(st).toMatchObject({ locked: false, keyHeldBy: 'aivaultd', daemon: { locked: false } });
  });

  it('secrets create / rotate / import with the passphrase on stdin, served by the daemon', async () => {
    const c = await cli(
      ['secrets', 'create', '--name', 'OPENAI_API_KEY', '--value', KEY, '--passphrase-stdin'],
      PASS,
    );
    expect(c.code, c.stderr).toBe(0);
    let before = upstream.requests.length;
    expect((await invokeModels()).code).toBe(0);
    expect(upstream.requests[before]?.headers.authorization).toBe(`Bearer ${KEY}`);
    const r = await cli(
      ['secrets', 'rotate', '--id', 'OPENAI_API_KEY', '--value', KEY2, '--passphrase-stdin'],
      PASS,
    );
    expect(r.code, r.stderr).toBe(0);
    before = upstream.requests.length;
    expect((await invokeModels()).code).toBe(0);
    expect(upstream.requests[before]?.headers.authorization).toBe(`Bearer ${KEY2}`);
    const i = await cli([
      'secrets',
      'import',
      '--entry',
      'SCRIPTED_EXTRA=value-0123456789',
      '--passphrase',
      PASS,
    ]);
    expect(i.code, i.stderr).toBe(0);
  });

  it('attach-group re-seals the value (attachments are in its AAD) through the daemon', async () => {
    const a = await cli(
      [
        'secrets',
        'attach-group',
        '--id',
        'OPENAI_API_KEY',
        '--workspace-id',
        'w1',
        '--group-id',
        'g1',
        '--passphrase-stdin',
      ],
      PASS,
    );
    expect(a.code, a.stderr).toBe(0);
    const id = (
      JSON.parse((await cli(['secrets', 'list', '-v'])).stdout) as { id: string; name: string }[]
    ).find((x) => x.name === 'OPENAI_API_KEY')?.id;
    const rec = JSON.parse(readFileSync(join(vaultDir, 'secrets', `${id ?? ''}.json`), 'utf8')) as {
      aadVersion: number;
      attachedGroups: unknown[];
    };
    expect(rec).toMatchObject({ aadVersion: 3, attachedGroups: [{ workspaceId: 'w1', groupId: 'g1' }] });
    const before = upstream.requests.length;
    expect((await invokeModels()).code).toBe(0);
    expect(upstream.requests[before]?.headers.authorization).toBe(`Bearer ${KEY2}`);
  });

  it('a write without the passphrase names --passphrase-stdin', async () => {
    const res = await cli(['secrets', 'delete', '--id', 'SCRIPTED_EXTRA', '-v']);
    expect(res.code).toBe(1);
    const err = JSON.parse(res.stderr) as { error: string; message: string };
    expect(err.error).toBe('operator_auth_required');
    expect(err.message).toContain('--passphrase-stdin');
  });

  it('rotate-master --new-passphrase keeps the daemon unlocked under the new passphrase', async () => {
    const res = await cli(['rotate-master', '--new-passphrase', NEW_PASS, '--passphrase-stdin'], PASS);
    expect(res.code, res.stderr).toBe(0);
    const before = upstream.requests.length;
    expect((await invokeModels()).code).toBe(0);
    expect(upstream.requests[before]?.headers.authorization).toBe(`Bearer ${KEY2}`);
    const old = await cli(
      ['token', 'mint', '--capability', 'openai/models', '--passphrase-stdin', '-v'],
      PASS,
    );
    expect(JSON.parse(old.stderr)).toMatchObject({ error: 'operator_auth_required' });
    const ok = await cli(
      ['token', 'mint', '--capability', 'openai/models', '--passphrase-stdin', '-v'],
      NEW_PASS,
    );
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('after lock, invocations fail with vault_unavailable naming aivault unlock', async () => {
    expect((await cli(['lock'])).code).toBe(0);
    const res = await invokeModels();
    expect(res.code).toBe(1);
    const err = JSON.parse(res.stderr) as { error: string; message: string };
    expect(err.error).toBe('vault_unavailable');
    expect(err.message).toContain('aivault unlock');
    const st = JSON.parse((await cli(['status', '-v'])).stdout) as Record<string, unknown>;
    expect(st).toMatchObject({ locked: true, keyHeldBy: null });
  });
});

// Reference CLI flows run as a script would (stdin is a pipe, never a terminal), through the built CLI,
// in-process (AIVAULTD_DISABLE=1) and through the daemon: scope filters, the reference's flag spellings,
// credentials bound to an execution context, and errors that must be reported instead of swallowed.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopDaemon } from '../../../src/cli/commands/daemon.js';
import { startHttpsUpstream, type HttpsUpstream } from '../../support/https-upstream.js';
import { createTestCa, issueServerCert } from '../../support/test-ca.js';
import {
  headerCredentialArgs,
  isolatedEnv,
  parseJson,
  registerSecret,
  runCli,
  type CliResult,
} from '../../support/run-cli.js';
import { tmpDir } from '../../support/tmp-dir.js';

const KEY = registerSecret('parity-context-key-20261204');
let upstream: HttpsUpstream;
let env: Record<string, string>;
let vaultDir: string;
const MODES = [
  ['daemon', {}],
  ['in-process', { AIVAULTD_DISABLE: '1' }],
] as const;

const ok = async (args: string[], extra: Record<string, string> = {}): Promise<CliResult> => {
  const res = await runCli(args, { env: { ...env, ...extra } });
  expect(res.code, `${args.join(' ')}: ${res.stderr}`).toBe(0);
  return res;
};
const failure = async (
  args: string[],
  extra: Record<string, string> = {},
): Promise<{ error: string; message: string }> => {
  const res = await runCli([...args, '-v'], { env: { ...env, ...extra } });
  expect(res.code, res.stdout).not.toBe(0);
  return JSON.parse(res.stderr) as { error: string; message: string };
};

const AWS_EU = 'bedrock-runtime.eu-west-1.amazonaws.com';
let awsUpstream: HttpsUpstream;

beforeAll(async () => {
  upstream = await startHttpsUpstream();
  awsUpstream = await startHttpsUpstream(issueServerCert([AWS_EU]));
  vaultDir = join(tmpDir(), 'vault');
  env = isolatedEnv(vaultDir, {
    AIVAULT_DEV_RESOLVE: `upstream.test=127.0.0.1:${upstream.port},${AWS_EU}=127.0.0.1:${awsUpstream.port}`,
    AIVAULT_DEV_CA_CERT_PATH: createTestCa().caCertPath,
  });
  await ok(['init', '--dev']);
});

afterAll(async () => {
  await stopDaemon(join(vaultDir, 'run', 'aivaultd.sock')).catch(() => undefined);
  await upstream.close();
  await awsUpstream.close();
});

describe('secrets list filters by scope', () => {
  it('--scope/--workspace-id/--group-id filter; no filter lists every scope, marked', async () => {
    for (const [name, scope] of [
      ['G_KEY', []],
      ['W1_KEY', ['--scope', 'workspace', '--workspace-id', 'w1']],
      ['W2_KEY', ['--scope', 'workspace', '--workspace-id', 'w2']],
      ['GR_KEY', ['--scope', 'group', '--workspace-id', 'w1', '--group-id', 'g1']],
    ] as const) {
      const res = await runCli(['secrets', 'create', '--name', name, '--value-stdin', ...scope], {
        env,
        input: 'v-1234567',
      });
      expect(res.code, res.stderr).toBe(0);
    }
    const names = async (filter: string[]): Promise<string[]> =>
      parseJson<{ name: string }[]>(await ok(['secrets', 'list', ...filter, '-v']))
        .map((s) => s.name)
        .sort();
    expect(await names(['--scope', 'global'])).toEqual(['G_KEY']);
    expect(await names(['--scope', 'workspace'])).toEqual(['W1_KEY', 'W2_KEY']);
    expect(await names(['--scope', 'workspace', '--workspace-id', 'w1'])).toEqual(['W1_KEY']);
    expect(await names(['--scope', 'group', '--workspace-id', 'w1', '--group-id', 'g1'])).toEqual(['GR_KEY']);
    expect(await names(['--workspace-id', 'w1'])).toEqual(['GR_KEY', 'W1_KEY']);
    expect(await names([])).toEqual(['GR_KEY', 'G_KEY', 'W1_KEY', 'W2_KEY']);
    const human = (await ok(['secrets', 'list'])).stdout;
    expect(human).toContain('workspace:w2');
    expect(human).toContain('group:w1/g1');
    expect((await failure(['secrets', 'list', '--scope', 'global', '--workspace-id', 'w1'])).error).toBe(
      'usage',
    );
    for (const name of ['G_KEY', 'W1_KEY', 'W2_KEY', 'GR_KEY']) await ok(['secrets', 'delete', '--id', name]);
  });
});

describe('reference spellings', () => {
  it('oauth setup --state puts the given state in the consent URL', async () => {
    const out = parseJson<{ consentUrl: string; state: string }>(
      await ok([
        'oauth',
        'setup',
        '--provider',
        'google',
        '--auth-url',
        'https://accounts.example.com/o/oauth2/auth',
        '--client-id',
        'cid',
        '--redirect-uri',
        'http://127.0.0.1:8787/callback',
        '--scope',
        'gmail.readonly',
        '--state',
        'csrf-token-42',
        '-v',
      ]),
    );
    expect(out.state).toBe('csrf-token-42');
    expect(new URL(out.consentUrl).searchParams.get('state')).toBe('csrf-token-42');
  });

  it('secrets create/rotate --value-file read the value from a file (not the argument list)', async () => {
    const file = join(tmpDir(), 'oauth.json');
    writeFileSync(file, `${registerSecret('{"clientId":"c","refreshToken":"file-token-123"}')}\n`, {
      mode: 0o600,
    });
    const id = parseJson<{ secret: { id: string } }>(
      await ok(['secrets', 'create', '--name', 'FROM_FILE', '--value-file', file, '-v']),
    ).secret.id;
    await ok(['secrets', 'rotate', '--id', id, '--value-file', file]);
    await ok(['secrets', 'update', '--id', id, '--alias', 'a1', '--alias', 'a2']);
    const cleared = parseJson<{ aliases: string[] }>(
      await ok(['secrets', 'update', '--id', id, '--clear-aliases', '-v']),
    );
    expect(cleared.aliases).toEqual([]);
    const missing = await failure(['secrets', 'create', '--name', 'NOPE', '--value-file', `${file}.missing`]);
    expect(missing).toMatchObject({ error: 'usage' });
    expect(missing.message).toContain('ENOENT');
    await ok(['secrets', 'delete', '--id', id]);
  });

  it('credential create --scope sets OAuth2 scopes (--oauth-scope still works)', async () => {
    const secret = parseJson<{ secret: { id: string } }>(
      await ok([
        'secrets',
        'create',
        '--name',
        'MY_OAUTH',
        '--value',
        '{"clientId":"c","refreshToken":"r"}',
        '-v',
      ]),
    ).secret.id;
    const base = [
      '--provider',
      'my-oauth',
      '--secret-ref',
      `vault:secret:${secret}`,
      '--auth',
      'oauth2',
      '--token-endpoint',
      'https://upstream.test/token',
      '--host',
      'upstream.test',
    ];
    const a = parseJson<{ auth: { oauth2: { scopes: string[] } } }>(
      await ok(['credential', 'create', 'oa-1', ...base, '--scope', 'read', '--scope', 'write', '-v']),
    );
    expect(a.auth.oauth2.scopes).toEqual(['read', 'write']);
    const b = parseJson<{ auth: { oauth2: { scopes: string[] } } }>(
      await ok(['credential', 'create', 'oa-2', ...base, '--oauth-scope', 'read', '-v']),
    );
    expect(b.auth.oauth2.scopes).toEqual(['read']);
    // Scopes on a non-OAuth credential would be dropped silently: refused instead.
    expect(
      (
        await failure([
          ...headerCredentialArgs({ id: 'hd', secretRef: `vault:secret:${secret}`, host: 'upstream.test' }),
          '--scope',
          'read',
        ])
      ).error,
    ).toBe('usage');
  });
});

describe('hmac keys given as base64 (Svix whsec_…)', () => {
  it.each(MODES)('signs with the decoded key bytes (%s)', async (mode, extra) => {
    const keyBytes = randomBytes(24);
    const secret = registerSecret(`whsec_${keyBytes.toString('base64')}`);
    const name = `SVIX_${mode.replace('-', '_').toUpperCase()}`;
    const id = parseJson<{ secret: { id: string } }>(
      await runCli(['secrets', 'create', '--name', name, '--value-stdin', '-v'], { env, input: secret }),
    ).secret.id;
    const cred = `svix-${mode}`;
    await ok([
      'credential',
      'create',
      cred,
      '--provider',
      cred,
      '--secret-ref',
      `vault:secret:${id}`,
      '--auth',
      'hmac',
      '--header-name',
      'x-sig',
      '--value-template',
      't={{timestamp}},v1={{signature}}',
      '--hmac-key-encoding',
      'base64',
      '--host',
      'upstream.test',
    ]);
    await ok([
      'capability',
      'create',
      `${cred}/hook`,
      '--credential',
      cred,
      '--method',
      'POST',
      '--path',
      '/hook',
    ]);
    const before = upstream.requests.length;
    const res = await runCli(
      [
        'invoke',
        `${cred}/hook`,
        '--method',
        'POST',
        '--path',
        '/hook',
        '--body',
        '{"a":1}',
        '--header',
        'x-echo-headers=omit',
      ],
      { env: { ...env, ...extra } },
    );
    expect(res.code, res.stderr).toBe(0);
    const seen = upstream.requests[before];
    const [, t, sig] = /^t=(\d+),v1=([0-9a-f]+)$/.exec(String(seen?.headers['x-sig'] ?? '')) ?? [];
    const canonical = `POST\n/hook\n\n${t}\n${createHash('sha256').update('{"a":1}').digest('hex')}`;
    expect(sig).toBe(createHmac('sha256', keyBytes).update(canonical).digest('hex'));
  });
});

describe('registry AWS providers outside us-east-1', () => {
  it.each(MODES)(
    'credential create --aws-region moves the hosts and the signature (%s)',
    async (mode, extra) => {
      const aws = registerSecret(`{"accessKeyId":"AKIDEXAMPLE","secretAccessKey":"aws-secret-${mode}-0042"}`);
      const cred = `bedrock-eu-${mode}`;
      if (mode === 'daemon') {
        await runCli(['secrets', 'create', '--name', 'AWS_BEDROCK_CREDENTIALS', '--value-stdin'], {
          env,
          input: aws,
        });
      }
      const id = parseJson<{ id: string; name: string }[]>(await ok(['secrets', 'list', '-v'])).find(
        (x) => x.name === 'AWS_BEDROCK_CREDENTIALS',
      )?.id;
      const created = parseJson<{ hosts: string[] }>(
        await ok([
          'credential',
          'create',
          cred,
          '--provider',
          'aws-bedrock',
          '--secret-ref',
          `vault:secret:${id}`,
          '--aws-region',
          'eu-west-1',
          '-v',
        ]),
      );
      expect(created.hosts).toContain(AWS_EU);
      const before = awsUpstream.requests.length;
      const res = await runCli(
        [
          'invoke',
          'aws-bedrock/converse',
          '--credential',
          cred,
          '--method',
          'POST',
          '--path',
          '/model/m/converse',
          '--body',
          '{}',
          '--header',
          'x-echo-headers=omit',
        ],
        { env: { ...env, ...extra } },
      );
      expect(res.code, res.stderr).toBe(0);
      const seen = awsUpstream.requests[before];
      // Only the eu-west-1 host is mapped to this upstream (AIVAULT_DEV_RESOLVE), so it was the one dialled.
      expect(String(seen?.headers.authorization)).toContain('/eu-west-1/bedrock/aws4_request');
    },
  );

  it('refuses a --aws-region that is not a region name', async () => {
    const id = parseJson<{ id: string; name: string }[]>(await ok(['secrets', 'list', '-v'])).find(
      (x) => x.name === 'AWS_BEDROCK_CREDENTIALS',
    )?.id;
    for (const region of ['evil.example.com', 'eu-west-1.evil', 'EU-WEST-1']) {
      const err = await failure([
        'credential',
        'create',
        'bad-region',
        '--provider',
        'aws-bedrock',
        '--secret-ref',
        `vault:secret:${id}`,
        '--aws-region',
        region,
      ]);
      expect(err.error).toBe('usage');
    }
  });
});

describe('credential create --workspace-id/--group-id binds it to an execution context', () => {
  let secretId = '';
  beforeAll(async () => {
    secretId = parseJson<{ secret: { id: string } }>(
      await runCli(['secrets', 'create', '--name', 'CTX_KEY', '--value-stdin', '-v'], { env, input: KEY }),
    ).secret.id;
    const cred = parseJson<{ workspaceId: string }>(
      await ok([
        ...headerCredentialArgs({
          id: 'ctx-ws',
          provider: 'ctx',
          secretRef: `vault:secret:${secretId}`,
          host: 'upstream.test',
        }),
        '--workspace-id',
        'w1',
        '-v',
      ]),
    );
    expect(cred.workspaceId).toBe('w1');
    await ok([
      'capability',
      'create',
      'ctx/items',
      '--credential',
      'ctx-ws',
      '--method',
      'GET',
      '--path',
      '/items',
    ]);
    expect((await ok(['credential', 'list'])).stdout).toContain('workspace:w1');
  });

  const invoke = (context: string[], extra: Record<string, string>) =>
    runCli(['invoke', 'ctx/items', '--path', '/items', '--header', 'x-echo-headers=omit', ...context, '-v'], {
      env: { ...env, ...extra },
    });

  it.each(MODES)('serves only its workspace (%s)', async (_mode, extra) => {
    const before = upstream.requests.length;
    const inside = await invoke(['--workspace-id', 'w1'], extra);
    expect(inside.code, inside.stderr).toBe(0);
    expect(upstream.requests[before]?.headers.authorization).toBe(`Bearer ${KEY}`);
    for (const outside of [[], ['--workspace-id', 'w2']]) {
      const res = await invoke(outside, extra);
      expect(res.code).toBe(1);
      expect(JSON.parse(res.stderr)).toMatchObject({ error: 'credential_not_found' });
    }
    expect(upstream.requests.length).toBe(before + 1);
  });

  it('a group binding needs that group; a group without its workspace is refused at create', async () => {
    await ok(['secrets', 'attach-group', '--id', secretId, '--workspace-id', 'w1', '--group-id', 'g1']);
    await ok([
      ...headerCredentialArgs({
        id: 'ctx-group',
        provider: 'ctxg',
        secretRef: `vault:secret:${secretId}`,
        host: 'upstream.test',
      }),
      '--workspace-id',
      'w1',
      '--group-id',
      'g1',
    ]);
    await ok([
      'capability',
      'create',
      'ctxg/items',
      '--credential',
      'ctx-group',
      '--method',
      'GET',
      '--path',
      '/items',
    ]);
    for (const [, extra] of MODES) {
      const call = (context: string[]) =>
        runCli(
          ['invoke', 'ctxg/items', '--path', '/items', '--header', 'x-echo-headers=omit', ...context, '-v'],
          {
            env: { ...env, ...extra },
          },
        );
      const inGroup = await call(['--workspace-id', 'w1', '--group-id', 'g1']);
      expect(inGroup.code, inGroup.stderr).toBe(0);
      for (const outside of [
        ['--workspace-id', 'w1'],
        ['--workspace-id', 'w1', '--group-id', 'g2'],
      ]) {
        const res = await call(outside);
        expect(res.code).toBe(1);
        expect(JSON.parse(res.stderr)).toMatchObject({ error: 'credential_not_found' });
      }
    }
    expect(
      (
        await failure([
          ...headerCredentialArgs({
            id: 'bad',
            secretRef: `vault:secret:${secretId}`,
            host: 'upstream.test',
          }),
          '--group-id',
          'g1',
        ])
      ).error,
    ).toBe('usage');
  });
});

describe('errors are reported, not swallowed', () => {
  beforeAll(async () => {
    const id = parseJson<{ secret: { id: string } }>(
      await runCli(['secrets', 'create', '--name', 'ERR_KEY', '--value-stdin', '-v'], { env, input: KEY }),
    ).secret.id;
    await ok([
      ...headerCredentialArgs({ id: 'errs', secretRef: `vault:secret:${id}`, host: 'upstream.test' }),
    ]);
    await ok([
      'capability',
      'create',
      'errs/items',
      '--credential',
      'errs',
      '--method',
      'GET',
      '--path',
      '/items',
    ]);
  });
  const call = (extra: Record<string, string>) =>
    runCli(['invoke', 'errs/items', '--path', '/items', '--header', 'x-echo-headers=omit', '-v'], {
      env: { ...env, ...extra },
    });

  it.each(MODES)('a corrupt secret record is storage_corrupt naming the file (%s)', async (mode, extra) => {
    const created = parseJson<{ secret: { id: string } }>(
      await runCli(
        [
          'secrets',
          'create',
          '--name',
          `CORRUPT_${mode.replace('-', '_').toUpperCase()}`,
          '--value-stdin',
          '-v',
        ],
        {
          env,
          input: 'another-value-1',
        },
      ),
    ).secret.id;
    const path = join(vaultDir, 'secrets', `${created}.json`);
    const original = readFileSync(path);
    writeFileSync(path, '{"version": 2, "id": "truncated');
    try {
      const res = await call(extra);
      expect(res.code).toBe(1);
      const err = JSON.parse(res.stderr) as { error: string; message: string };
      expect(err.error).toBe('storage_corrupt');
      expect(err.message).toContain(`${created}.json`);
    } finally {
      writeFileSync(path, original);
    }
    const healed = await call(extra);
    expect(healed.code, healed.stderr).toBe(0);
    await ok(['secrets', 'delete', '--id', created]);
  });

  it('an in-process invocation whose audit event cannot be written says so', async () => {
    const audit = join(vaultDir, 'audit');
    mkdirSync(audit, { recursive: true });
    renameSync(audit, `${audit}.moved`);
    writeFileSync(audit, 'not a directory'); // every append fails (ENOTDIR)
    try {
      const res = await runCli(
        ['invoke', 'errs/items', '--path', '/items', '--header', 'x-echo-headers=omit'],
        {
          env: { ...env, AIVAULTD_DISABLE: '1' },
        },
      );
      expect(res.code, res.stderr).toBe(0); // the call itself completed
      expect(res.stderr).toContain('audit event not written');
    } finally {
      rmSync(audit, { force: true });
      renameSync(`${audit}.moved`, audit);
    }
  });
});

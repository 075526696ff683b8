// `aivault credential create … --host` (and `capability create --host`) refuse, at create time, a host
// that invoke would refuse: a port other than 443 (unless the vault is a verified dev vault with
// AIVAULT_DEV_ALLOW_NON_DEFAULT_PORTS, the one case invoke dials it), scheme, userinfo, path, IP, or a
// wildcard wider than one label under a two-label suffix. Stable error shape: `usage`, exit 2, nothing stored.
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  isolatedEnv,
  parseJson,
  registerSecret,
  runCli,
  headerCredentialArgs,
} from '../../support/run-cli.js';
import { tmpDir } from '../../support/tmp-dir.js';

const KEY = registerSecret('host-validation-key-7351');

interface Vault {
  env: Record<string, string>;
  secretId: string;
  shopSecretId: string;
}

async function makeVault(dev: boolean, extra: Record<string, string> = {}): Promise<Vault> {
  const env = isolatedEnv(join(tmpDir(), 'vault'), { AIVAULTD_DISABLE: '1', ...extra });
  const init = await runCli(dev ? ['init', '--dev'] : ['init'], { env });
  expect(init.code, init.stderr).toBe(0);
  const ids: string[] = [];
  for (const name of ['MY_CUSTOM_KEY', 'SHOPIFY_ACCESS_TOKEN']) {
    const r = await runCli(['secrets', 'create', '--name', name, '--value-stdin', '-v'], { env, input: KEY });
    expect(r.code, r.stderr).toBe(0);
    ids.push(parseJson<{ secret: { id: string } }>(r).secret.id);
  }
  return { env, secretId: ids[0]!, shopSecretId: ids[1]! };
}

const customCreate = (v: Vault, id: string, host: string): string[] => [
  ...headerCredentialArgs({ id: id, provider: 'acme', secretRef: `vault:secret:${v.secretId}`, host: host }),
  '-v',
];

async function refused(v: Vault, args: string[], message: string): Promise<void> {
  const r = await runCli(args, { env: v.env });
  expect(r.code, `${args.join(' ')}\n${r.stdout}${r.stderr}`).toBe(2);
  const err = JSON.parse(r.stderr) as { error: string; message: string };
  expect(err.error).toBe('usage');
  expect(err.message).toContain(message);
}

async function credentialIds(v: Vault): Promise<string[]> {
  const r = await runCli(['credential', 'list', '-v'], { env: v.env });
  expect(r.code, r.stderr).toBe(0);
  return parseJson<{ id: string }[]>(r).map((c) => c.id);
}

describe('credential create --host on a normal vault', () => {
  let v: Vault;
  beforeAll(async () => {
    // The dev override is requested but a non-dev vault never honours it.
    v = await makeVault(false, { AIVAULT_DEV_ALLOW_NON_DEFAULT_PORTS: '1' });
  });

  it.each([
    ['upstream.test:22', 'only the default https port is allowed'],
    ['upstream.test:8443', 'only the default https port is allowed'],
    ['*.upstream.test:8443', 'only the default https port is allowed'],
    ['https://upstream.test', 'host must be a bare DNS name'],
    ['user:pw@upstream.test', 'host must be a bare DNS name'],
    ['upstream.test/v1', 'host must be a bare DNS name'],
    ['*.com', 'wildcard is too wide'],
    ['*.co.uk', 'co.uk is a public suffix'],
    ['*.workers.dev', 'workers.dev is a public suffix'],
    ['*.*.upstream.test', 'a wildcard must be the whole first label'],
    ['10.0.0.1', 'host is not a valid DNS name'],
  ])('%j → usage (%s), exit 2, nothing stored', async (host, message) => {
    await refused(v, customCreate(v, 'c1', host), message);
    expect(await credentialIds(v)).not.toContain('c1');
  });

  it('a registry per-tenant host with a port is refused the same way', async () => {
    await refused(
      v,
      [
        'credential',
        'create',
        'shop',
        '--provider',
        'shopify',
        '--secret-ref',
        `vault:secret:${v.shopSecretId}`,
        '--host',
        'acme.myshopify.com:8443',
        '-v',
      ],
      'only the default https port is allowed',
    );
    expect(await credentialIds(v)).not.toContain('shop');
  });

  it('capability create --host with a port is refused; the same host without it works', async () => {
    const r = await runCli(customCreate(v, 'wild', '*.upstream.test'), { env: v.env });
    expect(r.code, r.stderr).toBe(0);
    const cap = [
      'capability',
      'create',
      'acme/api',
      '--credential',
      'wild',
      '--method',
      'GET',
      '--path',
      '/',
    ];
    await refused(
      v,
      [...cap, '--host', 'a.upstream.test:22', '-v'],
      'only the default https port is allowed',
    );
    const ok = await runCli([...cap, '--host', 'a.upstream.test', '-v'], { env: v.env });
    expect(ok.code, ok.stderr).toBe(0);
    expect(parseJson<{ allow: { hosts: string[] } }>(ok).allow.hosts).toEqual(['a.upstream.test']);
  });

  it('control: a bare name (any case, :443) is accepted and stored canonically', async () => {
    const r = await runCli(customCreate(v, 'good', 'Upstream.TEST:443'), { env: v.env });
    expect(r.code, r.stderr).toBe(0);
    expect(parseJson<{ hosts: string[] }>(r).hosts).toEqual(['upstream.test']);
  });
});

describe('credential create --host on a dev vault', () => {
  it('host:port is accepted only with AIVAULT_DEV_ALLOW_NON_DEFAULT_PORTS', async () => {
    const v = await makeVault(true);
    await refused(v, customCreate(v, 'p', 'upstream.test:8443'), 'only the default https port is allowed');
    const allowed = { ...v, env: { ...v.env, AIVAULT_DEV_ALLOW_NON_DEFAULT_PORTS: '1' } };
    const r = await runCli(customCreate(allowed, 'p', 'upstream.test:8443'), { env: allowed.env });
    expect(r.code, r.stderr).toBe(0);
    expect(parseJson<{ hosts: string[] }>(r).hosts).toEqual(['upstream.test:8443']);
  });
});

/**
 * A credential or capability host that invoke would refuse (a port other than 443 outside a dev vault that
 * allows it, scheme, userinfo, path, IP, a too-wide wildcard) is refused when it is SET — credential create,
 * update (prepareCredential, used by the operator API's PATCH) and capability create — by the same rule
 * (parseHostPattern / parseAuthority) that invoke applies, not stored and discovered at invoke time.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkRequest } from '../../../src/core/broker/policy.js';
import { isValidHostPattern, parseHostPattern } from '../../../src/core/broker/hosts.js';
import {
  catalogPaths,
  createCapability,
  createCredential,
  loadCatalog,
  prepareCredential,
  type CatalogPaths,
  type CreateCredentialInput,
} from '../../../src/stores/catalog/index.js';
import type { SecretInfo } from '../../../src/core/broker/types.js';
import { registry, secret } from '../broker/fixtures.js';

const secrets: SecretInfo[] = [secret('s-custom', 'MY_CUSTOM_KEY'), secret('s-shop', 'SHOPIFY_ACCESS_TOKEN')];
const header = { header: { header_name: 'authorization', value_template: 'Bearer {{secret}}' } };
const custom = (host: string): CreateCredentialInput => ({
  id: 'c',
  provider: 'acme',
  secretRef: 's-custom',
  auth: header,
  hosts: [host],
});

let root: string;
let paths: CatalogPaths;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'aivault-hosts-'));
  paths = catalogPaths(root);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function refusal(p: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (err) {
    const e = err as { code: string; message: string };
    return { code: e.code, message: e.message };
  }
  throw new Error('expected a refusal, got success');
}

describe('parseHostPattern (the one host rule)', () => {
  it.each([
    ['api.acme.dev', 'api.acme.dev'],
    ['API.Acme.Dev.', 'api.acme.dev'],
    [' api.acme.dev ', 'api.acme.dev'],
    ['api.acme.dev:443', 'api.acme.dev'],
    ['*.acme.dev', '*.acme.dev'],
    ['*.api.acme.dev', '*.api.acme.dev'],
    ['bücher.example', 'xn--bcher-kva.example'],
  ])('%j → %j', (raw, canonical) => {
    expect(parseHostPattern(raw)).toEqual({ ok: true, value: canonical });
  });

  it.each([
    ['api.acme.dev:22', 'only the default https port is allowed'],
    ['api.acme.dev:8443', 'only the default https port is allowed'],
    ['*.acme.dev:8443', 'only the default https port is allowed'],
    ['api.acme.dev:0', 'host has an invalid port'],
    ['api.acme.dev:99999', 'host has an invalid port'],
    ['api.acme.dev:', 'host has an invalid port'],
    ['api.acme.dev:22:22', 'only the default https port is allowed'],
    ['https://api.acme.dev', 'host must be a bare DNS name'],
    ['user@api.acme.dev', 'host must be a bare DNS name'],
    ['user:pw@api.acme.dev', 'host must be a bare DNS name'],
    ['api.acme.dev/v1', 'host must be a bare DNS name'],
    ['api.acme.dev\\x', 'host must be a bare DNS name'],
    ['[::1]', 'host must be a bare DNS name'],
    ['api.acme.dev?x=1', 'host is not a valid DNS name'],
    ['api.acme.dev#frag', 'host is not a valid DNS name'],
    ['10.0.0.1', 'host is not a valid DNS name'],
    ['localhost', 'host is not a valid DNS name'],
    ['', 'host is empty'],
    ['   ', 'host is empty'],
    ['*', 'a wildcard must be the whole first label (*.example.com)'],
    ['*.', 'wildcard is too wide: *.suffix needs a suffix of at least two labels'],
    ['*.com', 'wildcard is too wide: *.suffix needs a suffix of at least two labels'],
    ['*.com.', 'wildcard is too wide: *.suffix needs a suffix of at least two labels'],
    ['*.com:443', 'wildcard is too wide: *.suffix needs a suffix of at least two labels'],
    ['*.*.acme.dev', 'a wildcard must be the whole first label (*.example.com)'],
    ['**.acme.dev', 'a wildcard must be the whole first label (*.example.com)'],
    ['*acme.dev', 'a wildcard must be the whole first label (*.example.com)'],
    ['api.*.acme.dev', 'a wildcard must be the whole first label (*.example.com)'],
    ['api.acme.*', 'a wildcard must be the whole first label (*.example.com)'],
  ])('%j → policy_violation: %s', (raw, message) => {
    const r = parseHostPattern(raw);
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect({ code: r.error.code, message: r.error.message }).toEqual({ code: 'policy_violation', message });
  });

  it('a port is accepted only when allowed (dev vaults), and kept in the canonical form', () => {
    expect(parseHostPattern('api.acme.dev:8443', { allowPort: true })).toEqual({
      ok: true,
      value: 'api.acme.dev:8443',
    });
    expect(parseHostPattern('*.acme.dev:8443', { allowPort: true })).toEqual({
      ok: true,
      value: '*.acme.dev:8443',
    });
    expect(isValidHostPattern('api.acme.dev:8443', { allowPort: true })).toBe(true);
    expect(isValidHostPattern('api.acme.dev:8443')).toBe(false);
    // Stored values must already be canonical.
    expect(isValidHostPattern('API.acme.dev')).toBe(false);
    expect(isValidHostPattern('api.acme.dev:443')).toBe(false);
  });
});

describe('credential create refuses a host invoke would refuse', () => {
  it.each([
    'upstream.test:22',
    'upstream.test:8443',
    '*.upstream.test:8443',
    'https://upstream.test',
    'wss://upstream.test',
    'user@upstream.test',
    'upstream.test/path',
    'upstream.test?x',
    '*.com',
    '*.*.upstream.test',
    '127.0.0.1',
  ])('%j → usage, nothing stored', async (host) => {
    const r = await refusal(createCredential(paths, registry, custom(host), { secrets }));
    expect(r.code).toBe('usage');
    expect(r.message).toMatch(
      new RegExp(`^host ${JSON.stringify(host).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `),
    );
    await expect(readFile(paths.brokerJson, 'utf8')).rejects.toThrow(/ENOENT/);
  });

  it('the port message is the same one invoke gives', async () => {
    const r = await refusal(createCredential(paths, registry, custom('upstream.test:22'), { secrets }));
    expect(r.message).toContain('only the default https port is allowed');
  });

  it('registry per-tenant hosts with a port are refused too', async () => {
    const r = await refusal(
      createCredential(
        paths,
        registry,
        { id: 'shop', provider: 'shopify', secretRef: 's-shop', hosts: ['acme.myshopify.com:8443'] },
        { secrets },
      ),
    );
    expect(r).toMatchObject({
      code: 'usage',
      message: expect.stringContaining('only the default https port'),
    });
  });

  it('update (prepareCredential, as PATCH uses it) refuses the same hosts', () => {
    expect(() => prepareCredential(custom('upstream.test:22'), registry, { secrets })).toThrow(
      /only the default https port is allowed/,
    );
    expect(() => prepareCredential(custom('*.com'), registry, { secrets })).toThrow(/wildcard is too wide/);
  });

  it('a dev vault that allows non-default ports may store host:port, and invoke then accepts it', async () => {
    const created = await createCredential(paths, registry, custom('upstream.test:8443'), {
      secrets,
      allowNonDefaultPorts: true,
    });
    expect(created.hosts).toEqual(['upstream.test:8443']);
    await createCapability(
      paths,
      registry,
      { id: 'acme/api', credentialId: 'c', methods: ['GET'], pathPrefixes: ['/'] },
      { allowNonDefaultPorts: true },
    );
    const snapshot = await loadCatalog(paths, registry, secrets);
    const envelope = { capability: 'acme/api', request: { method: 'GET', path: '/x' } };
    const dev = checkRequest({
      envelope,
      context: {},
      snapshot,
      registry,
      dev: { allowNonDefaultPorts: true },
    });
    expect(dev.ok && dev.value.port).toBe(8443);
    // Without the dev allowance the stored port is still refused at invoke (defence in depth).
    const plain = checkRequest({ envelope, context: {}, snapshot, registry });
    expect(plain.ok ? 'ok' : plain.error.message).toBe('only the default https port is allowed');
  });
});

describe('capability create refuses a host invoke would refuse', () => {
  beforeEach(async () => {
    await createCredential(paths, registry, custom('*.upstream.test'), { secrets });
  });

  it.each([
    ['a.upstream.test:22', 'only the default https port is allowed'],
    ['https://a.upstream.test', 'host must be a bare DNS name'],
    ['user@a.upstream.test', 'host must be a bare DNS name'],
    ['*.com', 'wildcard is too wide'],
  ])('--host %j → usage (%s)', async (host, message) => {
    const r = await refusal(
      createCapability(paths, registry, {
        id: 'acme/api',
        credentialId: 'c',
        methods: ['GET'],
        pathPrefixes: ['/'],
        host,
      }),
    );
    expect(r.code).toBe('usage');
    expect(r.message).toContain(message);
  });

  it('a valid tenant host is accepted (control)', async () => {
    const cap = await createCapability(paths, registry, {
      id: 'acme/api',
      credentialId: 'c',
      methods: ['GET'],
      pathPrefixes: ['/'],
      host: 'A.Upstream.Test',
    });
    expect(cap.allow.hosts).toEqual(['a.upstream.test']);
  });
});

describe('wildcards over a public suffix (Public Suffix List, ICANN and private sections)', () => {
  it.each([
    ['*.co.uk', 'co.uk'],
    ['*.com.au', 'com.au'],
    ['*.github.io', 'github.io'],
    ['*.workers.dev', 'workers.dev'],
    ['*.herokuapp.com', 'herokuapp.com'],
    ['*.supabase.co', 'supabase.co'],
    ['*.s3.amazonaws.com', 's3.amazonaws.com'],
    ['*.eu-west-1.compute.amazonaws.com', 'eu-west-1.compute.amazonaws.com'],
  ])('credential create and update refuse %j: anyone can put a name under %s', async (host, suffix) => {
    const r = await refusal(createCredential(paths, registry, custom(host), { secrets }));
    expect(r.code).toBe('usage');
    expect(r.message).toContain(`${suffix} is a public suffix`);
    expect(() => prepareCredential(custom(host), registry, { secrets })).toThrow(/public suffix/);
    expect((await loadCatalog(paths, registry, secrets)).credentials.has('c')).toBe(false);
  });

  it.each(['*.acme.co.uk', '*.my-app.workers.dev', '*.example.com', '*.x.test', 'co.uk.example.com'])(
    '%j (a registrable domain under the suffix, or a concrete host) is accepted',
    async (host) => {
      const c = await createCredential(paths, registry, custom(host), { secrets });
      expect(c.hosts).toEqual([host]);
    },
  );
});

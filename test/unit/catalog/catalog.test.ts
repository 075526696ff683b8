import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkRequest } from '../../../src/core/broker/policy.js';
import {
  bind,
  catalogPaths,
  createCapability,
  createCredential,
  deleteCapability,
  deleteCredential,
  listBindings,
  loadCatalog,
  patchCapabilityAllow,
  patchCredential,
  removeSecretReferences,
  setPolicy,
  unbind,
  type CatalogPaths,
} from '../../../src/stores/catalog/index.js';
import type { SecretInfo } from '../../../src/core/broker/types.js';
import { registry, secret } from '../broker/fixtures.js';

let root: string;
let paths: CatalogPaths;
const secrets: SecretInfo[] = [
  secret('s-openai', 'OPENAI_API_KEY'),
  secret('s-shop', 'SHOPIFY_ACCESS_TOKEN'),
  secret('s-custom', 'MY_CUSTOM_KEY'),
  secret('s-trello-key', 'TRELLO_API_KEY'),
  secret('s-trello-token', 'TRELLO_TOKEN'),
];
const header = { header: { header_name: 'authorization', value_template: 'Bearer {{secret}}' } };

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'aivault-catalog-'));
  paths = catalogPaths(root);
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const errorCode = async (p: Promise<unknown>): Promise<string> => {
  try {
    await p;
    return 'ok';
  } catch (err) {
    return (err as { code?: string }).code ?? 'thrown';
  }
};

describe('loadCatalog', () => {
  it('empty vault → registry capabilities only', async () => {
    const snap = await loadCatalog(paths, registry, secrets);
    expect(snap.credentials.size).toBe(0);
    expect(snap.capabilities.size).toBe(registry.capabilityCount);
  });

  it('re-derivation defeats a tampered broker.json (auth + hosts come from the registry)', async () => {
    await createCredential(
      paths,
      registry,
      { id: 'openai', provider: 'openai', secretRef: 'vault:secret:s-openai' },
      { secrets },
    );
    await createCredential(
      paths,
      registry,
      { id: 'shop', provider: 'shopify', secretRef: 's-shop', hosts: ['my-store.myshopify.com'] },
      { secrets },
    );
    const doc = JSON.parse(await readFile(paths.brokerJson, 'utf8'));
    doc.credentials[0].hosts = ['evil.com'];
    doc.credentials[0].auth = { query: { param_name: 'leak' } };
    doc.credentials[1].hosts = ['evil.myshopify.com.evil.com', 'other.myshopify.com'];
    await writeFile(paths.brokerJson, JSON.stringify(doc));
    const warnings: string[] = [];
    const snap = await loadCatalog(paths, registry, secrets, { onWarning: (m) => warnings.push(m) });
    const openai = snap.credentials.get('openai');
    expect(openai?.hosts).toEqual(['api.openai.com']);
    expect(openai?.auth).toEqual(registry.getProvider('openai')?.auth);
    expect(snap.credentials.get('shop')?.hosts).toEqual(['other.myshopify.com']);
    expect(warnings.length).toBeGreaterThan(0);
    const r = checkRequest({
      envelope: { capability: 'openai/chat-completions', request: { method: 'POST', path: '/v1/chat' } },
      context: {},
      snapshot: snap,
      registry,
    });
    expect(r.ok && r.value.host).toBe('api.openai.com');
  });

  it('a custom capability in broker.json cannot shadow a registry id', async () => {
    await createCredential(
      paths,
      registry,
      { id: 'mine', provider: 'acme', secretRef: 's-custom', auth: header, hosts: ['api.acme.dev'] },
      { secrets },
    );
    const doc = JSON.parse(await readFile(paths.brokerJson, 'utf8'));
    doc.capabilities.push({
      id: 'openai/chat-completions',
      provider: 'acme',
      credentialId: 'mine',
      allow: { hosts: ['api.acme.dev'], methods: ['POST'], pathPrefixes: ['/'] },
    });
    await writeFile(paths.brokerJson, JSON.stringify(doc));
    const snap = await loadCatalog(paths, registry, secrets);
    expect(snap.capabilities.get('openai/chat-completions')?.source).toBe('registry');
  });

  it.each([
    ['not JSON', '{nope', []],
    ['wrong version', { version: 2, credentials: [], capabilities: [], policies: [] }, ['version']],
    [
      'bad nested fields',
      {
        version: 1,
        credentials: [{ id: 'x', provider: 'openai', source: 'registry', secretRefs: {}, createdAtMs: -1 }],
        capabilities: [
          {
            id: 'c',
            provider: 'p',
            credentialId: 'x',
            allow: { hosts: ['https://evil.com'], methods: [], pathPrefixes: ['/a/../b'] },
          },
        ],
        policies: [{ capabilityId: 'c', rateLimitPerMinute: 0 }],
      },
      [
        'credentials.0.secretRefs',
        'credentials.0.createdAtMs',
        'capabilities.0.allow.hosts.0',
        'capabilities.0.allow.methods',
        'capabilities.0.allow.pathPrefixes.0',
        'policies.0.rateLimitPerMinute',
      ],
    ],
    [
      'unknown field',
      { version: 1, credentials: [], capabilities: [], policies: [], extra: true },
      ['extra'],
    ],
    [
      'duplicate ids',
      {
        version: 1,
        credentials: [
          { id: 'x', provider: 'openai', source: 'registry', secretRefs: { secret: 'a' }, createdAtMs: 1 },
          { id: 'x', provider: 'openai', source: 'registry', secretRefs: { secret: 'b' }, createdAtMs: 1 },
        ],
        capabilities: [],
        policies: [],
      },
      ['credentials.1'],
    ],
  ])(
    'corrupt broker.json (%s) → storage_corrupt naming file and dot-paths',
    async (_name, content, fields) => {
      await writeFile(paths.brokerJson, typeof content === 'string' ? content : JSON.stringify(content));
      const err = await loadCatalog(paths, registry, secrets).then(
        () => undefined,
        (e: unknown) => e as { code: string; message: string },
      );
      expect(err?.code).toBe('storage_corrupt');
      expect(err?.message).toContain(paths.brokerJson);
      for (const f of fields) expect(err?.message).toContain(`${f}:`);
    },
  );

  it('corrupt capabilities.json → storage_corrupt', async () => {
    await writeFile(
      paths.capabilitiesJson,
      JSON.stringify({
        version: 1,
        bindings: [{ capabilityId: 'x', secretRef: 'y', scope: { kind: 'group', workspaceId: 'w' } }],
      }),
    );
    const err = await errorCode(loadCatalog(paths, registry, secrets));
    expect(err).toBe('storage_corrupt');
  });
});

describe('mutations', () => {
  it.each<[string, Parameters<typeof createCredential>[2], string]>([
    [
      'custom without auth',
      { id: 'c', provider: 'acme', secretRef: 's-custom', hosts: ['api.acme.dev'] },
      'usage',
    ],
    ['custom without hosts', { id: 'c', provider: 'acme', secretRef: 's-custom', auth: header }, 'usage'],
    [
      'pinned secret under another provider',
      { id: 'c', provider: 'acme', secretRef: 's-openai', auth: header, hosts: ['evil.com'] },
      'policy_violation',
    ],
    [
      'registry provider name with foreign host',
      { id: 'c', provider: 'openai', secretRef: 's-custom', auth: header, hosts: ['evil.com'] },
      'policy_violation',
    ],
    [
      'tenant host not matching the pattern',
      { id: 'c', provider: 'shopify', secretRef: 's-shop', hosts: ['my-store.myshopify.com.evil.com'] },
      'policy_violation',
    ],
    [
      'tenant host apex',
      { id: 'c', provider: 'shopify', secretRef: 's-shop', hosts: ['myshopify.com'] },
      'policy_violation',
    ],
    ['per-tenant provider without host', { id: 'c', provider: 'shopify', secretRef: 's-shop' }, 'usage'],
    ['unknown secret', { id: 'c', provider: 'openai', secretRef: 'nope' }, 'not_found'],
    [
      'host with scheme',
      { id: 'c', provider: 'acme', secretRef: 's-custom', auth: header, hosts: ['https://api.acme.dev'] },
      'usage',
    ],
    [
      'IP host',
      { id: 'c', provider: 'acme', secretRef: 's-custom', auth: header, hosts: ['10.0.0.1'] },
      'usage',
    ],
    [
      'bad id',
      { id: '../x', provider: 'acme', secretRef: 's-custom', auth: header, hosts: ['api.acme.dev'] },
      'usage',
    ],
    [
      'registry multi-secret needs a map',
      { id: 'c', provider: 'trello', secretRef: 's-trello-key' },
      'usage',
    ],
  ])('createCredential: %s → %s', async (_name, input, expected) => {
    expect(await errorCode(createCredential(paths, registry, input, { secrets }))).toBe(expected);
  });

  it('duplicate credential id → conflict', async () => {
    const input = { id: 'openai', provider: 'openai', secretRef: 's-openai' };
    await createCredential(paths, registry, input, { secrets });
    expect(await errorCode(createCredential(paths, registry, input, { secrets }))).toBe('conflict');
  });

  it('20 concurrent createCredential calls lose nothing', async () => {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        createCredential(
          paths,
          registry,
          { id: `c${i}`, provider: 'acme', secretRef: 's-custom', auth: header, hosts: ['api.acme.dev'] },
          { secrets },
        ),
      ),
    );
    const snap = await loadCatalog(paths, registry, secrets);
    expect([...snap.credentials.keys()].sort()).toEqual(Array.from({ length: 20 }, (_, i) => `c${i}`).sort());
  });

  it('capability create/delete, policy, cascade on credential delete', async () => {
    await createCredential(
      paths,
      registry,
      { id: 'mine', provider: 'acme', secretRef: 's-custom', auth: header, hosts: ['api.acme.dev'] },
      { secrets },
    );
    expect(
      await errorCode(
        createCapability(paths, registry, {
          id: 'openai/models',
          credentialId: 'mine',
          methods: ['GET'],
          pathPrefixes: ['/'],
        }),
      ),
    ).toBe('conflict');
    expect(
      await errorCode(
        createCapability(paths, registry, {
          id: 'acme/x',
          credentialId: 'mine',
          methods: [],
          pathPrefixes: ['/'],
        }),
      ),
    ).toBe('usage');
    expect(
      await errorCode(
        createCapability(paths, registry, {
          id: 'acme/x',
          credentialId: 'mine',
          methods: ['GET'],
          pathPrefixes: [],
        }),
      ),
    ).toBe('usage');
    expect(
      await errorCode(
        createCapability(paths, registry, {
          id: 'acme/x',
          credentialId: 'mine',
          methods: ['GET'],
          pathPrefixes: ['/'],
          host: 'evil.com',
        }),
      ),
    ).toBe('policy_violation');
    expect(
      await errorCode(
        createCapability(paths, registry, {
          id: 'acme/x',
          credentialId: 'nope',
          methods: ['GET'],
          pathPrefixes: ['/'],
        }),
      ),
    ).toBe('credential_not_found');
    const cap = await createCapability(paths, registry, {
      id: 'acme/x',
      credentialId: 'mine',
      methods: ['get'],
      pathPrefixes: ['/v1/things'],
    });
    expect(cap.allow).toEqual({ hosts: ['api.acme.dev'], methods: ['GET'], pathPrefixes: ['/v1/things'] });
    expect(
      await errorCode(setPolicy(paths, registry, { capabilityId: 'acme/x', rateLimitPerMinute: 0 })),
    ).toBe('usage');
    expect(
      await errorCode(setPolicy(paths, registry, { capabilityId: 'acme/x', maxRequestBodyBytes: 1.5 })),
    ).toBe('usage');
    expect(await errorCode(setPolicy(paths, registry, { capabilityId: 'nope', rateLimitPerMinute: 5 }))).toBe(
      'capability_not_found',
    );
    await setPolicy(paths, registry, { capabilityId: 'acme/x', rateLimitPerMinute: 5 });
    const merged = await setPolicy(paths, registry, { capabilityId: 'acme/x', responseBlocklist: ['token'] });
    expect(merged).toMatchObject({ rateLimitPerMinute: 5, responseBlocklist: ['token'] });
    // Operator approval: set, kept by other merges, removed by `off` (other fields kept).
    await setPolicy(paths, registry, { capabilityId: 'acme/x', approval: 'once' });
    const approval = await setPolicy(paths, registry, { capabilityId: 'acme/x', rateLimitPerMinute: 6 });
    expect(approval).toMatchObject({ approval: 'once', rateLimitPerMinute: 6 });
    expect((await loadCatalog(paths, registry, secrets)).policies.get('acme/x')?.approval).toBe('once');
    const off = await setPolicy(paths, registry, { capabilityId: 'acme/x', approval: 'off' });
    expect(off.approval).toBeUndefined();
    expect(off).toMatchObject({ rateLimitPerMinute: 6, responseBlocklist: ['token'] });
    expect(
      await errorCode(
        setPolicy(paths, registry, { capabilityId: 'acme/x', approval: 'sometimes' as 'once' }),
      ),
    ).toBe('usage');
    expect(await errorCode(deleteCapability(paths, registry, 'openai/models'))).toBe('usage');
    // Without --cascade the user's capability (and its policy) outlives the credential.
    const kept = await deleteCredential(paths, 'mine');
    expect(kept).toEqual({ removedCapabilities: [], orphanedCapabilities: ['acme/x'] });
    const orphaned = await loadCatalog(paths, registry, secrets);
    expect(orphaned.capabilities.get('acme/x')?.credentialId).toBe('mine');
    expect(orphaned.policies.has('acme/x')).toBe(true);
    expect(await errorCode(deleteCredential(paths, 'mine'))).toBe('credential_not_found');
    // Recreated under the same id, the capability is usable again; --cascade then removes both.
    await createCredential(
      paths,
      registry,
      { id: 'mine', provider: 'acme', secretRef: 's-custom', auth: header, hosts: ['api.acme.dev'] },
      { secrets },
    );
    const result = await deleteCredential(paths, 'mine', { cascade: true });
    expect(result).toEqual({ removedCapabilities: ['acme/x'], orphanedCapabilities: [] });
    const snap = await loadCatalog(paths, registry, secrets);
    expect(snap.capabilities.has('acme/x')).toBe(false);
    expect(snap.policies.size).toBe(0);
    expect(await errorCode(deleteCredential(paths, 'mine'))).toBe('credential_not_found');
    expect(await errorCode(deleteCapability(paths, registry, 'acme/x'))).toBe('capability_not_found');
  });

  it('bind / list / unbind', async () => {
    await bind(paths, registry, { capabilityId: 'openai/models', secretRef: 's-openai' }, { secrets });
    await bind(paths, registry, {
      capabilityId: 'openai/models',
      secretRef: 's-openai',
      scope: { kind: 'workspace', workspaceId: 'w1' },
    });
    expect(await errorCode(bind(paths, registry, { capabilityId: 'nope/x', secretRef: 's-openai' }))).toBe(
      'capability_not_found',
    );
    expect(await listBindings(paths, { capabilityId: 'openai/models' })).toHaveLength(2);
    expect(await unbind(paths, { capabilityId: 'openai/models', scope: { kind: 'global' } })).toBe(1);
    expect(await errorCode(unbind(paths, { capabilityId: 'openai/models', scope: { kind: 'global' } }))).toBe(
      'not_found',
    );
  });

  it('removeSecretReferences drops credentials, their capabilities and bindings', async () => {
    await createCredential(
      paths,
      registry,
      { id: 'mine', provider: 'acme', secretRef: 's-custom', auth: header, hosts: ['api.acme.dev'] },
      { secrets },
    );
    await createCapability(paths, registry, {
      id: 'acme/x',
      credentialId: 'mine',
      methods: ['GET'],
      pathPrefixes: ['/'],
    });
    await bind(paths, registry, { capabilityId: 'acme/x', secretRef: 's-custom' });
    const r = await removeSecretReferences(paths, 's-custom');
    expect(r).toEqual({ removedCredentials: ['mine'], removedCapabilities: ['acme/x'], removedBindings: 1 });
  });
});

describe('PATCH (the catalog is the only writer of broker.json)', () => {
  const mine = { id: 'mine', provider: 'acme', secretRef: 's-custom', auth: header, hosts: ['api.acme.dev'] };

  it('patchCredential replaces the given fields, keeps the rest and the context binding', async () => {
    await createCredential(
      paths,
      registry,
      { ...mine, params: { a: '1' }, workspaceId: 'w1', groupId: 'g1' },
      { secrets, nowMs: 1000 },
    );
    await patchCredential(paths, registry, 'mine', { hosts: ['other.acme.dev'] }, { secrets });
    const doc = JSON.parse(await readFile(paths.brokerJson, 'utf8'));
    expect(doc.credentials).toHaveLength(1);
    expect(doc.credentials[0]).toMatchObject({
      id: 'mine',
      provider: 'acme',
      hosts: ['other.acme.dev'],
      params: { a: '1' },
      secretRefs: { secret: 's-custom' },
      workspaceId: 'w1',
      groupId: 'g1',
      createdAtMs: 1000,
    });
    expect(doc.credentials[0].auth).toEqual(header);
    const snap = await loadCatalog(paths, registry, secrets);
    expect(snap.credentials.get('mine')?.hosts).toEqual(['other.acme.dev']);
  });

  it('patchCredential validates the merge like a create and writes nothing when it fails', async () => {
    await createCredential(paths, registry, mine, { secrets });
    const before = await readFile(paths.brokerJson, 'utf8');
    expect(
      await errorCode(patchCredential(paths, registry, 'mine', { hosts: ['10.0.0.1'] }, { secrets })),
    ).toBe('usage');
    expect(
      await errorCode(patchCredential(paths, registry, 'mine', { secretRef: 's-openai' }, { secrets })),
    ).toBe('policy_violation');
    expect(
      await errorCode(patchCredential(paths, registry, 'nope', { hosts: ['x.acme.dev'] }, { secrets })),
    ).toBe('credential_not_found');
    expect(await readFile(paths.brokerJson, 'utf8')).toBe(before);
  });

  it('concurrent patches and creates lose nothing (one locked read-modify-write each)', async () => {
    await createCredential(paths, registry, mine, { secrets });
    await Promise.all([
      ...Array.from({ length: 10 }, (_, i) =>
        createCredential(paths, registry, { ...mine, id: `c${i}` }, { secrets }),
      ),
      patchCredential(paths, registry, 'mine', { params: { p: 'x' } }, { secrets }),
    ]);
    const snap = await loadCatalog(paths, registry, secrets);
    expect(snap.credentials.size).toBe(11);
    expect(snap.credentials.get('mine')?.params).toEqual({ p: 'x' });
  });

  it('patchCapabilityAllow changes a custom rule; built-in, unknown and invalid input are refused', async () => {
    await createCredential(paths, registry, mine, { secrets });
    await createCapability(paths, registry, {
      id: 'mine/ops',
      credentialId: 'mine',
      methods: ['GET'],
      pathPrefixes: ['/ops'],
    });
    await patchCapabilityAllow(paths, registry, 'mine/ops', { methods: ['get', 'post', 'POST'] });
    let snap = await loadCatalog(paths, registry, secrets);
    expect(snap.capabilities.get('mine/ops')?.allow).toMatchObject({
      methods: ['GET', 'POST'],
      pathPrefixes: ['/ops'],
      hosts: ['api.acme.dev'],
    });
    await patchCapabilityAllow(paths, registry, 'mine/ops', { pathPrefixes: ['/b', '/c/'] });
    snap = await loadCatalog(paths, registry, secrets);
    expect(snap.capabilities.get('mine/ops')?.allow.pathPrefixes).toEqual(['/b', '/c/']);
    expect(
      await errorCode(patchCapabilityAllow(paths, registry, 'openai/models', { methods: ['POST'] })),
    ).toBe('policy_violation');
    expect(await errorCode(patchCapabilityAllow(paths, registry, 'nope', { methods: ['GET'] }))).toBe(
      'capability_not_found',
    );
    expect(await errorCode(patchCapabilityAllow(paths, registry, 'mine/ops', { methods: [] }))).toBe('usage');
    expect(await errorCode(patchCapabilityAllow(paths, registry, 'mine/ops', { methods: ['BREW'] }))).toBe(
      'usage',
    );
    expect(
      await errorCode(patchCapabilityAllow(paths, registry, 'mine/ops', { pathPrefixes: ['/x?y=1'] })),
    ).toBe('usage');
  });
});

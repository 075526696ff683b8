import { describe, expect, it } from 'vitest';
import { checkRequest } from '../../../src/core/broker/policy.js';
import type {
  BrokerSnapshot,
  Capability,
  Credential,
  RequestContext,
} from '../../../src/core/broker/types.js';
import {
  chat,
  registry,
  type SnapshotParts,
  registryCredential,
  secret,
  snapshot,
  standardSnapshot,
} from './fixtures.js';

const run = (
  envelope: unknown,
  snap: BrokerSnapshot = standardSnapshot(),
  context: RequestContext = {},
  dev = false,
) => checkRequest({ envelope, context, snapshot: snap, registry, dev: { allowNonDefaultPorts: dev } });
const code = (r: ReturnType<typeof run>) => (r.ok ? 'ok' : r.error.code);

const evilCustomCredential: Credential = {
  id: 'evil',
  provider: 'openai',
  auth: { header: { header_name: 'authorization', value_template: 'Bearer {{secret}}' } },
  hosts: ['evil.com'],
  secretRefs: { secret: 's-openai' },
  source: 'custom',
  createdAtMs: 0,
};
const evilCapability: Capability = {
  id: 'my/exfil',
  provider: 'openai',
  allow: { hosts: ['evil.com'], methods: ['POST'], pathPrefixes: ['/'] },
  source: 'custom',
  credentialId: 'evil',
};

describe('checkRequest: happy path', () => {
  it('builds a plan with host/auth from policy and cleaned headers', () => {
    const r = run(
      chat({
        headers: [
          ['Content-Type', 'application/json'],
          ['Host', 'evil.com'],
        ],
      }),
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value).toMatchObject({
      capabilityId: 'openai/chat-completions',
      credentialId: 'openai',
      host: 'api.openai.com',
      port: 443,
      path: '/v1/chat/completions',
      query: '',
      headers: [['content-type', 'application/json']],
      secretRefs: { secret: 's-openai' },
      policy: { responseBlocklist: [], bufferResponse: false },
    });
    expect(r.value.body.kind).toBe('bytes');
  });

  it('uses the concrete tenant host for wildcard capabilities', () => {
    const r = run({
      capability: 'shopify/products',
      request: { method: 'GET', path: '/admin/api/2024-01/products.json' },
    });
    expect(r.ok && r.value.host).toBe('my-store.myshopify.com');
  });

  it('effective policy: the blocklist streams (no buffering); max request body enforced', () => {
    const snap = standardSnapshot({
      policies: [
        { capabilityId: 'openai/chat-completions', responseBlocklist: ['id'], maxRequestBodyBytes: 4 },
      ],
    });
    const small = run(chat({ body: 'abcd' }), snap);
    expect(small.ok && small.value.policy.bufferResponse).toBe(false);
    expect(code(run(chat({ body: 'abcde' }), snap))).toBe('body_too_large');
    expect(code(run(chat({ body: undefined, bodyBase64: 'YWJjZGU=' }), snap))).toBe('body_too_large');
    expect(code(run(chat({ body: undefined, bodyBytes: new Uint8Array(5) }), snap))).toBe('body_too_large');
    const bytes = run(chat({ body: undefined, bodyBytes: new Uint8Array([0, 255, 1, 2]) }), snap);
    expect(bytes.ok && bytes.value.body).toEqual({ kind: 'bytes', data: new Uint8Array([0, 255, 1, 2]) });
    expect(code(run(chat({ body: undefined, multipart: [{ name: 'a', value: 'abcdef' }] }), snap))).toBe(
      'body_too_large',
    );
  });
});

describe('checkRequest: attacks and rules (one row each)', () => {
  it.each<[string, unknown, string, BrokerSnapshot?, RequestContext?]>([
    [
      'unknown capability',
      { capability: 'openai/nope', request: { method: 'GET', path: '/' } },
      'capability_not_found',
    ],
    [
      'caller Authorization header',
      chat({ headers: [['Authorization', 'Bearer stolen']] }),
      'policy_violation',
    ],
    ['caller x-api-key header', chat({ headers: { 'x-api-key': 'k' } }), 'policy_violation'],
    ['caller cookie', chat({ headers: { cookie: 'a=b' } }), 'policy_violation'],
    ['path ..', chat({ path: '/v1/chat/../../../etc/passwd' }), 'policy_violation'],
    ['path %2e%2e', chat({ path: '/v1/chat/%2e%2e/%2e%2e/admin' }), 'policy_violation'],
    ['path %2f', chat({ path: '/v1/chat%2f..%2fadmin' }), 'policy_violation'],
    ['path %5c', chat({ path: '/v1/chat/%5c..%5cadmin' }), 'policy_violation'],
    ['path //', chat({ path: '/v1//chat/completions' }), 'policy_violation'],
    ['path control char', chat({ path: '/v1/chat/completions%0d%0aX-Injected:%201' }), 'policy_violation'],
    ['request.url field', chat({ url: 'https://evil.com/' }), 'policy_violation'],
    ['absolute URL path', chat({ path: 'https://evil.com/v1/chat' }), 'policy_violation'],
    ['unknown field', chat({ proxy: 'http://evil.com' }), 'invalid_request'],
    ['two body modes', chat({ body: '{}', bodyFilePath: '/etc/passwd' }), 'invalid_request'],
    ['wrong method', chat({ method: 'DELETE' }), 'policy_violation'],
    ['prefix boundary /v1/chatx', chat({ path: '/v1/chatx' }), 'policy_violation'],
    ['outside prefix', chat({ path: '/v1/files' }), 'policy_violation'],
    [
      'host swap: custom capability + credential aim the OPENAI-pinned secret at evil.com',
      { capability: 'my/exfil', request: { method: 'POST', path: '/collect', body: 'x' } },
      'policy_violation',
      standardSnapshot({ credentials: [evilCustomCredential], capabilities: [evilCapability] }),
    ],
    [
      'host swap: tampered registry credential hosts (snapshot edited)',
      chat(),
      'policy_violation',
      snapshot({
        credentials: [
          {
            ...registryCredential('openai', 'openai', { secret: 's-openai' }),
            hosts: ['api.openai.com.evil.com'],
          },
        ],
        secrets: [secret('s-openai', 'OPENAI_API_KEY')],
      }),
    ],
    [
      'host swap: tampered snapshot widens a registry capability to evil.com',
      chat(),
      'ok', // registry ids resolve from the compiled registry, so the tampered entry is ignored
      (() => {
        const s = standardSnapshot();
        (s.capabilities as Map<string, Capability>).set('openai/chat-completions', {
          id: 'openai/chat-completions',
          provider: 'openai',
          allow: { hosts: ['evil.com'], methods: ['POST'], pathPrefixes: ['/'] },
          source: 'custom',
        });
        return s;
      })(),
    ],
    [
      'pinned secret used under another provider name',
      {
        capability: 'anthropic/messages',
        credential: 'stolen',
        request: { method: 'POST', path: '/v1/messages' },
      },
      'policy_violation',
      standardSnapshot({
        credentials: [{ ...registryCredential('stolen', 'anthropic', { secret: 's-openai' }) }],
      }),
    ],
    [
      'pinned secret in a custom capability on a lookalike host',
      { capability: 'my/lookalike', request: { method: 'POST', path: '/v1/chat' } },
      'policy_violation',
      standardSnapshot({
        credentials: [{ ...evilCustomCredential, id: 'look', hosts: ['api-openai.com'] }],
        capabilities: [
          {
            ...evilCapability,
            id: 'my/lookalike',
            credentialId: 'look',
            allow: { ...evilCapability.allow, hosts: ['api-openai.com'] },
          },
        ],
      }),
    ],
    ...(['api.openai.com.evil.com', 'api-openai.com', 'apiopenai.com'].map((host) => [
      `typosquat credential host ${host}`,
      chat(),
      'policy_violation',
      snapshot({
        credentials: [{ ...evilCustomCredential, id: 'openai', hosts: [host] }],
        secrets: [secret('s-openai', 'OPENAI_API_KEY')],
      }),
    ]) as [string, unknown, string, BrokerSnapshot][]),
    [
      'wildcard capability with apex tenant host',
      { capability: 'shopify/products', request: { method: 'GET', path: '/admin/api' } },
      'policy_violation',
      snapshot({
        credentials: [registryCredential('shop', 'shopify', { secret: 's-shop' }, ['myshopify.com'])],
        secrets: [secret('s-shop', 'SHOPIFY_ACCESS_TOKEN')],
      }),
    ],
    [
      'wildcard capability with two-label tenant host',
      { capability: 'shopify/products', request: { method: 'GET', path: '/admin/api' } },
      'policy_violation',
      snapshot({
        credentials: [registryCredential('shop', 'shopify', { secret: 's-shop' }, ['a.b.myshopify.com'])],
        secrets: [secret('s-shop', 'SHOPIFY_ACCESS_TOKEN')],
      }),
    ],
    [
      'wildcard capability, credential never bound to a tenant host',
      { capability: 'shopify/products', request: { method: 'GET', path: '/admin/api' } },
      'policy_violation',
      snapshot({
        credentials: [registryCredential('shop', 'shopify', { secret: 's-shop' })],
        secrets: [secret('s-shop', 'SHOPIFY_ACCESS_TOKEN')],
      }),
    ],
    [
      'non-default port without dev',
      { capability: 'my/port', request: { method: 'GET', path: '/x' } },
      'policy_violation',
      standardSnapshot({
        credentials: [
          {
            ...evilCustomCredential,
            id: 'p',
            provider: 'local',
            hosts: ['api.local.test:8443'],
            secretRefs: { secret: 's-custom' },
          },
        ],
        capabilities: [
          {
            id: 'my/port',
            provider: 'local',
            credentialId: 'p',
            source: 'custom',
            allow: { hosts: ['api.local.test:8443'], methods: ['GET'], pathPrefixes: ['/'] },
          },
        ],
        secrets: [secret('s-custom', 'MY_KEY')],
      }),
    ],
    [
      'tampered host with userinfo/IP literal',
      { capability: 'my/ip', request: { method: 'GET', path: '/x' } },
      'policy_violation',
      standardSnapshot({
        credentials: [
          {
            ...evilCustomCredential,
            id: 'ip',
            provider: 'local',
            hosts: ['169.254.169.254'],
            secretRefs: { secret: 's-custom' },
          },
        ],
        capabilities: [
          {
            id: 'my/ip',
            provider: 'local',
            credentialId: 'ip',
            source: 'custom',
            allow: { hosts: ['169.254.169.254'], methods: ['GET'], pathPrefixes: ['/'] },
          },
        ],
        secrets: [secret('s-custom', 'MY_KEY')],
      }),
    ],
    [
      'token not scoped to the capability',
      chat(),
      'policy_violation',
      undefined,
      { token: { capabilities: ['anthropic/messages'] } },
    ],
    ['token provider wildcard admits', chat(), 'ok', undefined, { token: { capabilities: ['openai/*'] } }],
    [
      'token other provider wildcard refuses',
      chat(),
      'policy_violation',
      undefined,
      { token: { capabilities: ['anthropic/*'] } },
    ],
    [
      'token pinned credential vs explicit credential',
      chat({}, { credential: 'other' }),
      'policy_violation',
      undefined,
      { token: { capabilities: ['openai/*'], credential: 'openai' } },
    ],
    ['explicit credential of another provider', chat({}, { credential: 'anthropic' }), 'policy_violation'],
    ['explicit unknown credential', chat({}, { credential: 'nope' }), 'credential_not_found'],
  ])('%s → %s', (_name, envelope, expected, snap, context) => {
    expect(code(run(envelope, snap ?? standardSnapshot(), context ?? {}))).toBe(expected);
  });

  it('pinned credential auth comes from the registry even if the snapshot auth was tampered', () => {
    const tampered = snapshot({
      credentials: [
        {
          ...registryCredential('spotify', 'spotify', { secret: 's-spot' }),
          auth: { oauth2: { grant_type: 'refresh_token', token_endpoint: 'https://evil.com/token' } },
        },
      ],
      secrets: [secret('s-spot', 'SPOTIFY_OAUTH')],
    });
    const r = run(
      { capability: 'spotify/playlists', request: { method: 'GET', path: '/v1/me/playlists' } },
      tampered,
    );
    expect(r.ok && r.value.auth).toEqual(registry.getProvider('spotify')?.auth);
  });

  it.each([
    ['/v1beta/models/x:generateContent?key=attacker', 'policy_violation'],
    ['/v1beta/models/x:generateContent?alt=sse&%6Bey=attacker', 'policy_violation'],
    ['/v1beta/models/x:generateContent?alt=sse', 'ok'],
  ])('query-auth param supplied by the caller: %s → %s', (path, expected) => {
    const snap = snapshot({
      credentials: [registryCredential('gemini', 'gemini', { secret: 'g' })],
      secrets: [secret('g', 'GEMINI_API_KEY')],
    });
    expect(code(run({ capability: 'gemini/generate', request: { method: 'POST', path } }, snap))).toBe(
      expected,
    );
  });

  it('a claimed secret name is treated as pinned even if pinnedProvider was stripped', () => {
    const snap = standardSnapshot({
      credentials: [{ ...evilCustomCredential, secretRefs: { secret: 's-stripped' } }],
      capabilities: [evilCapability],
      secrets: [{ id: 's-stripped', name: 'OPENAI_API_KEY', scope: { kind: 'global' }, attachedGroups: [] }],
    });
    expect(code(run({ capability: 'my/exfil', request: { method: 'POST', path: '/x' } }, snap))).toBe(
      'policy_violation',
    );
  });

  it('an unbound per-tenant credential does not make the tenant-bound one ambiguous', () => {
    const snap = snapshot({
      credentials: [
        registryCredential('shopify', 'shopify', { secret: 's-shop' }),
        registryCredential('my-shop', 'shopify', { secret: 's-shop' }, ['my-store.myshopify.com']),
      ],
      secrets: [secret('s-shop', 'SHOPIFY_ACCESS_TOKEN')],
    });
    const r = run({ capability: 'shopify/products', request: { method: 'GET', path: '/admin/api' } }, snap);
    expect(r.ok && r.value.credentialId).toBe('my-shop');
  });

  it('dev allows a non-default port on a custom (unpinned) credential', () => {
    const snap = standardSnapshot({
      credentials: [
        {
          ...evilCustomCredential,
          id: 'p',
          provider: 'local',
          hosts: ['api.local.test:8443'],
          secretRefs: { secret: 's-custom' },
        },
      ],
      capabilities: [
        {
          id: 'my/port',
          provider: 'local',
          credentialId: 'p',
          source: 'custom',
          allow: { hosts: ['api.local.test:8443'], methods: ['GET'], pathPrefixes: ['/'] },
        },
      ],
      secrets: [secret('s-custom', 'MY_KEY')],
    });
    const r = run({ capability: 'my/port', request: { method: 'GET', path: '/x' } }, snap, {}, true);
    expect(r.ok && [r.value.host, r.value.port]).toEqual(['api.local.test', 8443]);
  });
});

describe('credential resolution: scope, bindings, ambiguity', () => {
  const ws = { kind: 'workspace' as const, workspaceId: 'w1' };
  const grp = { kind: 'group' as const, workspaceId: 'w1', groupId: 'g1' };
  const world = (extra: SnapshotParts = {}) =>
    snapshot({
      credentials: [
        registryCredential('openai-global', 'openai', { secret: 'g' }),
        registryCredential('openai-ws', 'openai', { secret: 'w' }),
        registryCredential('openai-grp', 'openai', { secret: 'gr' }),
        ...(extra.credentials ?? []),
      ],
      secrets: [
        secret('g', 'OPENAI_API_KEY', { attachedGroups: [{ workspaceId: 'w1', groupId: 'g2' }] }),
        secret('w', 'OPENAI_API_KEY', { scope: ws }),
        secret('gr', 'OPENAI_API_KEY', { scope: grp }),
        ...(extra.secrets ?? []),
      ],
      bindings: extra.bindings ?? [],
    });
  const resolved = (snap: BrokerSnapshot, context: RequestContext, envelope: unknown = chat()) => {
    const r = run(envelope, snap, context);
    return r.ok ? r.value.credentialId : r.error.code;
  };

  it.each<[string, RequestContext, string]>([
    ['no context → only the global one is visible', {}, 'openai-global'],
    ['workspace context prefers the workspace credential', { workspaceId: 'w1' }, 'openai-ws'],
    ['other workspace sees only global', { workspaceId: 'w9' }, 'openai-global'],
    ['group context prefers group', { workspaceId: 'w1', groupId: 'g1' }, 'openai-grp'],
    [
      'group g2: global attached to g2 ties with workspace? workspace wins (more specific)',
      { workspaceId: 'w1', groupId: 'g2' },
      'openai-ws',
    ],
    [
      'group in another workspace: global not attached → not found',
      { workspaceId: 'w9', groupId: 'g1' },
      'credential_not_found',
    ],
  ])('%s', (_name, context, expected) => {
    expect(resolved(world(), context)).toBe(expected);
  });

  it('global secret in a group context needs an explicit attachment', () => {
    const snap = snapshot({
      credentials: [registryCredential('openai', 'openai', { secret: 'g' })],
      secrets: [secret('g', 'OPENAI_API_KEY')],
    });
    expect(resolved(snap, { workspaceId: 'w1', groupId: 'g1' })).toBe('credential_not_found');
    const attached = snapshot({
      credentials: [registryCredential('openai', 'openai', { secret: 'g' })],
      secrets: [secret('g', 'OPENAI_API_KEY', { attachedGroups: [{ workspaceId: 'w1', groupId: 'g1' }] })],
    });
    expect(resolved(attached, { workspaceId: 'w1', groupId: 'g1' })).toBe('openai');
  });

  it('two global credentials of one provider → credential_ambiguous; explicit credential resolves it', () => {
    const snap = snapshot({
      credentials: [
        registryCredential('a', 'openai', { secret: 's1' }),
        registryCredential('b', 'openai', { secret: 's2' }),
      ],
      secrets: [secret('s1', 'OPENAI_API_KEY'), secret('s2', 'OPENAI_API_KEY')],
    });
    expect(resolved(snap, {})).toBe('credential_ambiguous');
    expect(resolved(snap, {}, chat({}, { credential: 'b' }))).toBe('b');
    expect(resolved(snap, { token: { capabilities: ['openai/*'], credential: 'a' } })).toBe('a');
  });

  it('a workspace credential named explicitly from another workspace is not found', () => {
    expect(resolved(world(), { workspaceId: 'w9' }, chat({}, { credential: 'openai-ws' }))).toBe(
      'credential_not_found',
    );
  });

  const cap = 'openai/chat-completions';
  it.each<[string, SnapshotParts['bindings'], RequestContext, string]>([
    [
      'global binding selects by secret',
      [{ capabilityId: cap, secretRef: 'vault:secret:g', scope: { kind: 'global' } }],
      { workspaceId: 'w1' },
      'openai-global',
    ],
    [
      'workspace binding beats global binding',
      [
        { capabilityId: cap, secretRef: 'vault:secret:g', scope: { kind: 'global' } },
        { capabilityId: cap, secretRef: 'vault:secret:w', scope: ws },
      ],
      { workspaceId: 'w1' },
      'openai-ws',
    ],
    [
      'group binding beats workspace binding',
      [
        { capabilityId: cap, secretRef: 'vault:secret:w', scope: ws },
        { capabilityId: cap, secretRef: 'vault:secret:gr', scope: grp },
      ],
      { workspaceId: 'w1', groupId: 'g1' },
      'openai-grp',
    ],
    [
      'consumer-specific beats generic at the same scope',
      [
        { capabilityId: cap, secretRef: 'vault:secret:w', scope: ws },
        { capabilityId: cap, secretRef: 'vault:secret:g', scope: ws, consumer: 'agent-a' },
      ],
      { workspaceId: 'w1', consumer: 'agent-a' },
      'openai-global',
    ],
    [
      'consumer binding for someone else is ignored',
      [
        { capabilityId: cap, secretRef: 'vault:secret:w', scope: ws },
        { capabilityId: cap, secretRef: 'vault:secret:g', scope: ws, consumer: 'agent-b' },
      ],
      { workspaceId: 'w1', consumer: 'agent-a' },
      'openai-ws',
    ],
    [
      'two bindings at the same precedence → ambiguous',
      [
        { capabilityId: cap, secretRef: 'vault:secret:g', scope: { kind: 'global' } },
        { capabilityId: cap, secretRef: 'vault:secret:w', scope: { kind: 'global' } },
      ],
      { workspaceId: 'w1' },
      'credential_ambiguous',
    ],
    [
      'binding to a secret out of scope does not fall back',
      [{ capabilityId: cap, secretRef: 'vault:secret:w', scope: { kind: 'global' } }],
      { workspaceId: 'w9' },
      'credential_not_found',
    ],
    [
      'binding for another workspace does not apply',
      [{ capabilityId: cap, secretRef: 'vault:secret:w', scope: ws }],
      {},
      'openai-global',
    ],
  ])('%s', (_name, bindings, context, expected) => {
    expect(resolved(world({ bindings }), context)).toBe(expected);
  });
});

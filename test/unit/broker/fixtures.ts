/** Fixture registry + snapshot builders for broker/catalog tests (built with compileRegistry, not the real registry). */
import { compileRegistry } from '../../../src/core/registry/compile.js';
import type { RegistryProvider } from '../../../src/core/registry/types.js';
import type {
  Binding,
  BrokerSnapshot,
  Capability,
  CapabilityPolicy,
  Credential,
  Scope,
  SecretInfo,
} from '../../../src/core/broker/types.js';
import { capabilityFromRegistry } from '../../../src/core/broker/resolve-capability.js';

export const PROVIDERS: RegistryProvider[] = [
  {
    provider: 'openai',
    vaultSecrets: { OPENAI_API_KEY: 'secret' },
    auth: { header: { header_name: 'authorization', value_template: 'Bearer {{secret}}' } },
    hosts: ['api.openai.com'],
    capabilities: [
      {
        id: 'openai/chat-completions',
        provider: 'openai',
        allow: { hosts: ['api.openai.com'], methods: ['POST'], pathPrefixes: ['/v1/chat'] },
      },
      {
        id: 'openai/models',
        provider: 'openai',
        allow: { hosts: ['api.openai.com'], methods: ['GET'], pathPrefixes: ['/v1/models'] },
      },
      {
        id: 'openai/transcription',
        provider: 'openai',
        allow: { hosts: ['api.openai.com'], methods: ['POST'], pathPrefixes: ['/v1/audio/transcriptions'] },
      },
    ],
  },
  {
    provider: 'anthropic',
    vaultSecrets: { ANTHROPIC_API_KEY: 'secret' },
    auth: { header: { header_name: 'x-api-key', value_template: '{{secret}}' } },
    hosts: ['api.anthropic.com'],
    capabilities: [
      {
        id: 'anthropic/messages',
        provider: 'anthropic',
        allow: { hosts: ['api.anthropic.com'], methods: ['POST'], pathPrefixes: ['/v1/messages'] },
      },
    ],
  },
  {
    provider: 'trello',
    vaultSecrets: { TRELLO_API_KEY: 'key', TRELLO_TOKEN: 'token' },
    auth: {
      multi_query: [
        { param_name: 'key', value_template: '{{key}}' },
        { param_name: 'token', value_template: '{{token}}' },
      ],
    },
    hosts: ['api.trello.com'],
    capabilities: Array.from({ length: 17 }, (_, i) => ({
      id: `trello/cap-${i}`,
      provider: 'trello',
      allow: { hosts: ['api.trello.com'], methods: ['GET' as const], pathPrefixes: [`/1/thing${i}`] },
    })),
  },
  {
    provider: 'shopify',
    vaultSecrets: { SHOPIFY_ACCESS_TOKEN: 'secret' },
    auth: { header: { header_name: 'x-shopify-access-token', value_template: '{{secret}}' } },
    hosts: ['*.myshopify.com'],
    capabilities: [
      {
        id: 'shopify/products',
        provider: 'shopify',
        allow: { hosts: ['*.myshopify.com'], methods: ['GET'], pathPrefixes: ['/admin/api'] },
      },
    ],
  },
  {
    provider: 'gemini',
    vaultSecrets: { GEMINI_API_KEY: 'secret' },
    auth: { query: { param_name: 'key', value_template: '{{secret}}' } },
    hosts: ['generativelanguage.googleapis.com'],
    capabilities: [
      {
        id: 'gemini/generate',
        provider: 'gemini',
        allow: {
          hosts: ['generativelanguage.googleapis.com'],
          methods: ['POST'],
          pathPrefixes: ['/v1beta/models'],
        },
      },
    ],
  },
  {
    provider: 'spotify',
    vaultSecrets: { SPOTIFY_OAUTH: 'secret' },
    auth: {
      oauth2: { grant_type: 'refresh_token', token_endpoint: 'https://accounts.spotify.com/api/token' },
    },
    hosts: ['api.spotify.com'],
    capabilities: [
      {
        id: 'spotify/playlists',
        provider: 'spotify',
        allow: { hosts: ['api.spotify.com'], methods: ['GET'], pathPrefixes: ['/v1/me/playlists'] },
      },
    ],
  },
];

export const registry = compileRegistry(PROVIDERS);

export const GLOBAL: Scope = { kind: 'global' };

export function secret(id: string, name: string, extra: Partial<SecretInfo> = {}): SecretInfo {
  const claim = registry.claimFor(name);
  return {
    id,
    name,
    scope: GLOBAL,
    attachedGroups: [],
    ...(claim ? { pinnedProvider: claim.provider } : {}),
    ...extra,
  };
}

export function registryCredential(
  id: string,
  provider: string,
  secretRefs: Record<string, string>,
  hosts?: string[],
): Credential {
  const p = registry.getProvider(provider);
  if (!p) throw new Error(`no provider ${provider}`);
  return {
    id,
    provider,
    auth: p.auth,
    hosts: hosts ?? [...p.hosts],
    secretRefs,
    source: 'registry',
    createdAtMs: 0,
  };
}

export interface SnapshotParts {
  credentials?: Credential[];
  capabilities?: Capability[];
  policies?: CapabilityPolicy[];
  bindings?: Binding[];
  secrets?: SecretInfo[];
}

export function snapshot(parts: SnapshotParts = {}): BrokerSnapshot {
  const caps = new Map<string, Capability>();
  for (const p of registry.providers)
    for (const c of p.capabilities) caps.set(c.id, capabilityFromRegistry(c));
  for (const c of parts.capabilities ?? []) caps.set(c.id, c);
  return {
    credentials: new Map((parts.credentials ?? []).map((c) => [c.id, c])),
    capabilities: caps,
    policies: new Map((parts.policies ?? []).map((p) => [p.capabilityId, p])),
    bindings: parts.bindings ?? [],
    secrets: new Map((parts.secrets ?? []).map((s) => [s.id, s])),
  };
}

/** The standard world: openai + anthropic + shopify (tenant host) credentials, one global secret each. */
export function standardSnapshot(extra: SnapshotParts = {}): BrokerSnapshot {
  return snapshot({
    credentials: [
      registryCredential('openai', 'openai', { secret: 's-openai' }),
      registryCredential('anthropic', 'anthropic', { secret: 's-anthropic' }),
      registryCredential('shop', 'shopify', { secret: 's-shop' }, ['my-store.myshopify.com']),
      ...(extra.credentials ?? []),
    ],
    capabilities: extra.capabilities ?? [],
    policies: extra.policies ?? [],
    bindings: extra.bindings ?? [],
    secrets: [
      secret('s-openai', 'OPENAI_API_KEY'),
      secret('s-anthropic', 'ANTHROPIC_API_KEY'),
      secret('s-shop', 'SHOPIFY_ACCESS_TOKEN'),
      ...(extra.secrets ?? []),
    ],
  });
}

export function chat(
  request: Record<string, unknown> = {},
  top: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    capability: 'openai/chat-completions',
    request: { method: 'POST', path: '/v1/chat/completions', body: '{}', ...request },
    ...top,
  };
}

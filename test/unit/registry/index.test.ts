// The public registry API: frozen at run time, cheap helpers for the CLI, describe output.
import { describe, expect, it } from 'vitest';
import {
  capabilitiesOf,
  describeAuth,
  describeCapability,
  listProviders,
  providerCategories,
  registry,
  requiredPlaceholders,
  shellQuote,
  templatePlaceholders,
} from '../../../src/core/registry/index.js';
import type { AuthSpec, RegistryProvider } from '../../../src/core/registry/types.js';
import { authTypeOf } from '../../../src/core/registry/auth-type.js';

describe('registry index is deep-frozen', () => {
  it('throws on mutation in strict mode (ESM modules are strict)', () => {
    const openai = registry.getProvider('openai') as RegistryProvider;
    const cap = registry.getCapability('openai/chat-completions');
    expect(Object.isFrozen(registry)).toBe(true);
    expect(() => {
      (registry as { capabilityCount: number }).capabilityCount = 0;
    }).toThrow(TypeError);
    expect(() => (registry.providers as RegistryProvider[]).push(openai)).toThrow(TypeError);
    expect(() => {
      (openai as unknown as { hosts: string[] }).hosts.push('evil.example.com');
    }).toThrow(TypeError);
    expect(() => {
      (openai.vaultSecrets as Record<string, string>).EVIL = 'secret';
    }).toThrow(TypeError);
    expect(() => {
      (openai.auth as { header: { value_template: string } }).header.value_template = '{{secret}}';
    }).toThrow(TypeError);
    expect(() => {
      (cap?.allow.pathPrefixes as string[])[0] = '/';
    }).toThrow(TypeError);
    expect(() => {
      (cap?.allow.methods as string[]).push('DELETE');
    }).toThrow(TypeError);
    expect(() => {
      (registry.getProvider as unknown as { hijack: number }).hijack = 1;
    }).toThrow(TypeError);
    expect(() => (listProviders() as RegistryProvider[]).pop()).toThrow(TypeError);
    expect(() => {
      (providerCategories() as unknown as { category: string }[]).length = 0;
    }).toThrow(TypeError);
  });
});

describe('helpers', () => {
  it('lists providers sorted by id', () => {
    const ids = listProviders().map((p) => p.provider);
    expect(ids).toEqual([...ids].sort());
    expect(ids.length).toBeGreaterThanOrEqual(60);
  });

  it('returns capabilities of a provider, empty for unknown', () => {
    expect(capabilitiesOf('anthropic').map((c) => c.id)).toContain('anthropic/messages');
    expect(capabilitiesOf('nope')).toEqual([]);
  });

  it('groups every provider in exactly one category', () => {
    const cats = providerCategories();
    const all = cats.flatMap((c) => c.providers);
    expect(all.sort()).toEqual(listProviders().map((p) => p.provider));
    expect(cats.map((c) => c.category)).toEqual(
      [...cats.map((c) => c.category)].sort((a, b) => a.localeCompare(b)),
    );
    expect(cats.find((c) => c.category === 'AI / ML')?.providers).toContain('openai');
  });

  it('reads auth types and placeholders, failing closed on malformed specs', () => {
    expect(authTypeOf({ query: { param_name: 'key' } })).toEqual({ ok: true, value: 'query' });
    for (const bad of [{}, { header: {}, query: {} }, { o_auth2: {} }, null, [], 'header'] as unknown[]) {
      const r = authTypeOf(bad as AuthSpec);
      expect(r.ok ? 'ok' : r.error.code, JSON.stringify(bad)).toBe('policy_violation');
    }
    expect(templatePlaceholders('t={{timestamp}},v1={{signature}}')).toEqual(['timestamp', 'signature']);
    expect(templatePlaceholders('Bearer {{ secret }}')).toEqual([]);
    expect(requiredPlaceholders(registry.getProvider('gemini') as RegistryProvider)).toEqual(['secret']);
    expect(requiredPlaceholders(registry.getProvider('twilio') as RegistryProvider)).toEqual([
      'account_sid',
      'auth_token',
    ]);
    expect(requiredPlaceholders(registry.getProvider('spotify') as RegistryProvider)).toEqual([]);
  });

  it('describes auth without secret values', () => {
    expect(describeAuth({ header: { header_name: 'x-api-key', value_template: '{{secret}}' } })).toBe(
      'header x-api-key: {{secret}}',
    );
    expect(describeAuth({ aws_sigv4: { service: 's3', region: 'us-east-1' } })).toBe(
      'aws sigv4 service s3 region us-east-1',
    );
    expect(describeAuth({ mtls: {} })).toBe('mutual TLS client certificate');
  });

  it('quotes shell words only when needed', () => {
    expect(shellQuote('/v1/models')).toBe('/v1/models');
    expect(shellQuote('{"a":1}')).toBe(`'{"a":1}'`);
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
  });
});

describe('describeCapability', () => {
  it('returns undefined for unknown ids', () => {
    expect(describeCapability('openai/nope')).toBeUndefined();
    expect(describeCapability('')).toBeUndefined();
  });

  it('describes openai/transcription as the seed shows it', () => {
    const d = describeCapability('openai/transcription');
    expect(d).toMatchObject({
      id: 'openai/transcription',
      provider: 'openai',
      auth: { type: 'header', detail: 'header authorization: Bearer {{secret}}' },
      secrets: [{ name: 'OPENAI_API_KEY', placeholder: 'secret', format: 'string' }],
      host: 'api.openai.com',
      perTenantHost: false,
      methods: ['POST'],
      pathPrefixes: ['/v1/audio/transcriptions'],
      contentType: 'multipart',
    });
    expect(d?.setup).toEqual([
      "aivault secrets create --name OPENAI_API_KEY --value '<value>' --scope global",
    ]);
    expect(d?.invoke[0]).toBe(
      'aivault invoke openai/transcription --method POST --path /v1/audio/transcriptions --multipart-field model=whisper-1 --multipart-file file=/tmp/audio.wav',
    );
    expect(JSON.parse(JSON.stringify(d))).toEqual(d);
  });

  it('shows JSON secret shapes, per-tenant binding, and streaming examples', () => {
    const spotify = describeCapability('spotify/playlists');
    expect(spotify?.auth.type).toBe('oauth2');
    expect(spotify?.secrets[0]).toMatchObject({
      name: 'SPOTIFY_OAUTH',
      format: 'json',
      fields: { required: ['clientId', 'refreshToken'] },
    });
    expect(spotify?.setup[0]).toContain(`--value '{"clientId":"<value>","refreshToken":"<value>"}'`);

    const shopify = describeCapability('shopify/admin-graphql');
    expect(shopify?.perTenantHost).toBe(true);
    expect(shopify?.setup.at(-1)).toContain('--host <tenant>.myshopify.com');

    const trello = describeCapability('trello/cards');
    expect(trello?.secrets.map((s) => s.name)).toEqual(['TRELLO_API_KEY', 'TRELLO_TOKEN']);

    const responses = describeCapability('openai/responses');
    expect(responses?.invoke.some((l) => l.includes('--stream'))).toBe(true);
    expect(responses?.invoke[0]).toContain('--header content-type=application/json --body ');
  });

  it('describes every capability without throwing', () => {
    for (const p of listProviders()) {
      for (const c of p.capabilities) {
        const d = describeCapability(c.id);
        expect(d?.invoke.length, c.id).toBeGreaterThan(0);
        expect(d?.setup.length, c.id).toBeGreaterThan(0);
        for (const line of d?.invoke ?? []) expect(line.startsWith(`aivault `)).toBe(true);
      }
    }
  });
});

// registry/schema.json compiles, every provider file validates, and the schema rejects what policy forbids.
import { Ajv2020 } from 'ajv/dist/2020.js';
import type { ValidateFunction } from 'ajv/dist/2020.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadProviders, readSchema } from './fixtures.js';

let validate: ValidateFunction;

beforeAll(() => {
  validate = new Ajv2020({ allErrors: true }).compile(readSchema());
});

function minimal(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    provider: 'acme',
    vaultSecrets: { ACME_API_KEY: 'secret' },
    auth: { header: { header_name: 'authorization', value_template: 'Bearer {{secret}}' } },
    hosts: ['api.acme.com'],
    capabilities: [
      {
        id: 'acme/things',
        provider: 'acme',
        allow: { hosts: ['api.acme.com'], methods: ['GET'], pathPrefixes: ['/v1/things'] },
      },
    ],
    ...overrides,
  };
}

function withAllow(allow: Record<string, unknown>): Record<string, unknown> {
  return minimal({
    capabilities: [
      {
        id: 'acme/things',
        provider: 'acme',
        allow: { hosts: ['api.acme.com'], methods: ['GET'], pathPrefixes: ['/v1/things'], ...allow },
      },
    ],
  });
}

describe('registry/schema.json', () => {
  it('is a strict draft 2020-12 schema', () => {
    const schema = readSchema();
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.additionalProperties).toBe(false);
  });

  it('accepts the minimal provider', () => {
    expect(validate(minimal()), JSON.stringify(validate.errors)).toBe(true);
  });

  it.each(loadProviders().map((p) => [p.file, p.data] as const))('%s validates', (_file, data) => {
    const ok = validate(data);
    expect(ok, JSON.stringify(validate.errors, null, 2)).toBe(true);
  });

  it('rejects unknown fields at every level', () => {
    expect(validate(minimal({ extra: 1 }))).toBe(false);
    expect(validate(withAllow({ ports: [443] }))).toBe(false);
    expect(
      validate(minimal({ auth: { header: { header_name: 'x', value_template: '{{secret}}', extra: 1 } } })),
    ).toBe(false);
    const cap = {
      id: 'acme/a',
      provider: 'acme',
      allow: { hosts: ['api.acme.com'], methods: ['GET'], pathPrefixes: ['/'] },
    };
    expect(validate(minimal({ capabilities: [{ ...cap, docs: { summary: 's', color: 'red' } }] }))).toBe(
      false,
    );
    expect(
      validate(
        minimal({ capabilities: [{ ...cap, docs: { example: { method: 'GET', path: '/', x: 1 } } }] }),
      ),
    ).toBe(false);
  });

  it('requires exactly one auth strategy', () => {
    expect(validate(minimal({ auth: {} }))).toBe(false);
    expect(validate(minimal({ auth: { mtls: {}, query: { param_name: 'key' } } }))).toBe(false);
    expect(validate(minimal({ auth: { o_auth2: {} } }))).toBe(false);
    expect(validate(minimal({ auth: 'basic' }))).toBe(false);
    expect(validate(minimal({ auth: { mtls: {} } }))).toBe(true);
    expect(validate(minimal({ auth: { aws_sigv4: { service: 's3', region: 'us-east-1' } } }))).toBe(true);
    expect(
      validate(minimal({ auth: { oauth2: { grant_type: 'password', token_endpoint: 'https://a.com/t' } } })),
    ).toBe(false);
    expect(
      validate(
        minimal({ auth: { oauth2: { grant_type: 'refresh_token', token_endpoint: 'http://a.com/t' } } }),
      ),
    ).toBe(false);
  });

  it.each([
    ['api.acme.com', true],
    ['*.myshopify.com', true],
    ['*.api.mailchimp.com', true],
    ['*.com', false],
    ['*', false],
    ['**.acme.com', false],
    ['api.*.acme.com', false],
    ['*acme.com', false],
    ['API.acme.com', false],
    ['acme', false],
    ['acme.com:8443', false],
    ['https://acme.com', false],
  ])('host %s valid=%s', (host, ok) => {
    expect(validate(minimal({ hosts: [host] }))).toBe(ok);
    expect(validate(withAllow({ hosts: [host] }))).toBe(ok);
  });

  it.each([
    ['/v1/things', true],
    ['/', true],
    ['/api/chat.', true],
    ['/v1/places:searchText', true],
    ['v1/things', false],
    ['/v1/../admin', false],
    ['/v1//things', false],
    ['/v1/%2e%2e', false],
    ['/v1\\things', false],
    ['/v1?x=1', false],
    ['/v1#x', false],
    ['/v1 x', false],
    ['/v1\u0000', false],
  ])('path prefix %j valid=%s', (prefix, ok) => {
    expect(validate(withAllow({ pathPrefixes: [prefix] }))).toBe(ok);
  });

  it('requires exactly one capability host and non-empty upper-case methods/prefixes', () => {
    expect(validate(withAllow({ hosts: [] }))).toBe(false);
    expect(validate(withAllow({ hosts: ['api.acme.com', 'b.acme.com'] }))).toBe(false);
    expect(validate(withAllow({ methods: [] }))).toBe(false);
    expect(validate(withAllow({ methods: ['get'] }))).toBe(false);
    expect(validate(withAllow({ methods: ['TRACE'] }))).toBe(false);
    expect(validate(withAllow({ methods: ['GET', 'GET'] }))).toBe(false);
    expect(validate(withAllow({ pathPrefixes: [] }))).toBe(false);
  });

  it('checks names of providers, capabilities and secrets', () => {
    expect(validate(minimal({ provider: 'Acme' }))).toBe(false);
    expect(validate(minimal({ vaultSecrets: { acme_key: 'secret' } }))).toBe(false);
    expect(validate(minimal({ vaultSecrets: {} }))).toBe(false);
    expect(validate(minimal({ vaultSecrets: { ACME_KEY: 'not valid' } }))).toBe(false);
    expect(validate(minimal({ capabilities: [] }))).toBe(false);
  });
});

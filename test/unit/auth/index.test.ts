import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  AUTH_STRATEGIES,
  authClassHeaderNames,
  authClassQueryNames,
  createAuth,
  redactUrl,
  SecretValues,
} from '../../../src/request-worker/auth/index.js';
import { AUTH_TYPES, type AuthSpec } from '../../../src/core/registry/types.js';
import { codeOf } from './helpers.js';

describe('createAuth: exactly one known strategy', () => {
  it('has a strategy for every AuthType', () => {
    expect(Object.keys(AUTH_STRATEGIES).sort()).toEqual([...AUTH_TYPES].sort());
    for (const type of AUTH_TYPES) expect(AUTH_STRATEGIES[type].type).toBe(type);
  });

  it.each([
    ['zero keys', {}],
    ['two keys', { header: { header_name: 'a', value_template: '{{secret}}' }, query: { param_name: 'k' } }],
    ['unknown type', { custom_x: {} }],
    ['rust spelling', { o_auth2: {} }],
    ['prototype key', JSON.parse('{"__proto__": {}}')],
    ['null', null],
    ['array', [{ header: {} }]],
  ])('%s → policy_violation', (_label, spec) => {
    expect(codeOf(createAuth(spec as AuthSpec))).toBe('policy_violation');
  });

  it.each([[{ header: null }], [{ query: {} }], [{ basic: 'x' }], [{ multi_header: {} }], [{ oauth2: {} }]])(
    'malformed body %j → auth_failed',
    (spec) => {
      expect(codeOf(createAuth(spec as unknown as AuthSpec))).toBe('auth_failed');
    },
  );
});

describe('authClassHeaderNames', () => {
  it.each([
    [{ header: { header_name: 'X-Api-Key', value_template: '{{secret}}' } }, ['x-api-key'], []],
    [{ query: { param_name: 'key' } }, [], ['key']],
    [{ path: { prefix_template: '/bot{{secret}}' } }, [], []],
    [{ basic: {} }, ['authorization'], []],
    [
      {
        multi_header: [
          { header_name: 'A', value_template: '{{a}}' },
          { header_name: 'B', value_template: '{{b}}' },
        ],
      },
      ['a', 'b'],
      [],
    ],
    [{ multi_query: [{ param_name: 'key' }, { param_name: 'token' }] }, [], ['key', 'token']],
    [{ oauth2: { grant_type: 'client_credentials', token_endpoint: 'https://x/t' } }, ['authorization'], []],
    [
      { aws_sigv4: { service: 's3', region: 'us-east-1' } },
      ['authorization', 'x-amz-date', 'x-amz-content-sha256', 'x-amz-security-token'],
      [],
    ],
    [{ hmac: { algorithm: 'sha256', header_name: 'X-Sig', value_template: '{{signature}}' } }, ['x-sig'], []],
    [{ mtls: {} }, [], []],
  ] as [AuthSpec, string[], string[]][])('%j', (spec, headers, queries) => {
    expect(authClassHeaderNames(spec)).toEqual(headers);
    expect(authClassQueryNames(spec)).toEqual(queries);
    expect(authClassHeaderNames(spec)).toBe(authClassHeaderNames(spec)); // cached per spec object
  });

  it('is empty for a spec that createAuth refuses', () => {
    expect(authClassHeaderNames({} as AuthSpec)).toEqual([]);
  });
});

describe('SecretValues', () => {
  it('expands top-level JSON string/number fields; explicit placeholders win; ambiguity drops', () => {
    const s = SecretValues.from({
      secret: '{"api_key":"k","n":5,"nested":{"x":"y"},"list":["a"]}',
      api_key: 'explicit',
      other: '{"shared":"1","token":"t"}',
      third: '{"shared":"2"}',
    });
    expect(s.get('api_key')).toBe('explicit');
    expect(s.get('n')).toBe('5');
    expect(s.get('token')).toBe('t');
    expect(s.has('nested')).toBe(false);
    expect(s.has('list')).toBe(false);
    expect(s.has('shared')).toBe(false);
    expect(s.first('missing', 'token')).toBe('t');
  });

  it('redacts itself in every printed form', () => {
    const s = SecretValues.from({ secret: 'hunter2' });
    expect(JSON.stringify({ s })).toBe('{"s":"[redacted]"}');
    expect(inspect(s)).not.toContain('hunter2');
    expect(`${s}`).not.toContain('hunter2');
  });
});

describe('redactUrl', () => {
  it('redacts raw, encoded and decoded forms, longest first', () => {
    expect(redactUrl('https://h/p?key=a%20b&x=a b&y=abc', ['a%20b'])).toBe(
      'https://h/p?key=[REDACTED]&x=[REDACTED]&y=abc',
    );
    expect(redactUrl('/bot123:abc/x', ['123:abc', '123'])).toBe('/bot[REDACTED]/x');
    expect(redactUrl('/x', [''])).toBe('/x');
  });
});

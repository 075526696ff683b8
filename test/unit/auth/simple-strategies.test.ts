import { describe, expect, it } from 'vitest';
import { applyAuthTarget, redactUrl } from '../../../src/request-worker/auth/index.js';
import { apply, codeOf, must } from './helpers.js';

describe('header', () => {
  it('renders the template into a lower-cased header', async () => {
    const out = must(
      await apply({ header: { header_name: 'X-Api-Key', value_template: '{{secret}}' } }, { secret: 'k1' }),
    );
    expect(out).toEqual({ setHeaders: [['x-api-key', 'k1']], appendQuery: [], urlSecrets: [] });
  });

  it.each(['Host', 'content-length', 'Transfer-Encoding', 'bad name', ''])(
    'refuses header name %j',
    async (name) => {
      expect(
        codeOf(await apply({ header: { header_name: name, value_template: '{{secret}}' } }, { secret: 'k' })),
      ).toBe('auth_failed');
    },
  );

  it.each(['a\rb', 'a\nb', 'a\u0000b', 'a\u007fb'])(
    'rejects control characters in values (%j)',
    async (value) => {
      const out = await apply(
        { header: { header_name: 'authorization', value_template: 'Bearer {{secret}}' } },
        { secret: value },
      );
      expect(codeOf(out)).toBe('auth_failed');
    },
  );

  it('refuses malformed templates at create time', async () => {
    for (const template of ['Bearer {{secret', '{{ bad name }}', '{{}}']) {
      expect(
        codeOf(await apply({ header: { header_name: 'a', value_template: template } }, { secret: 'k' })),
      ).toBe('auth_failed');
    }
  });

  it('tolerates spaces inside braces and repeated placeholders', async () => {
    const out = must(
      await apply(
        { header: { header_name: 'a', value_template: '{{ secret }}-{{secret}}' } },
        { secret: 'k' },
      ),
    );
    expect(out.setHeaders).toEqual([['a', 'k-k']]);
  });
});

describe('query', () => {
  it('appends the RFC 3986-encoded parameter (default template {{secret}})', async () => {
    const out = must(await apply({ query: { param_name: 'api key' } }, { secret: "a b/c?d&e=f+g!'()*ሴ" }));
    expect(out.appendQuery).toEqual([['api%20key', 'a%20b%2Fc%3Fd%26e%3Df%2Bg%21%27%28%29%2A%E1%88%B4']]);
    expect(out.urlSecrets).toEqual(['a%20b%2Fc%3Fd%26e%3Df%2Bg%21%27%28%29%2A%E1%88%B4']);
    expect(applyAuthTarget('/v1', 'q=1', out)).toEqual({
      path: '/v1',
      query: 'q=1&api%20key=a%20b%2Fc%3Fd%26e%3Df%2Bg%21%27%28%29%2A%E1%88%B4',
    });
  });

  it('CR/LF in query values are encoded, not sent raw', async () => {
    const out = must(await apply({ query: { param_name: 'key' } }, { secret: 'a\r\nb' }));
    expect(out.appendQuery).toEqual([['key', 'a%0D%0Ab']]);
  });

  it('multi_query renders each parameter from the JSON secret; duplicates are refused', async () => {
    const spec = {
      multi_query: [
        { param_name: 'key', value_template: '{{api_key}}' },
        { param_name: 'token', value_template: '{{token}}' },
      ],
    };
    const out = must(await apply(spec, { secret: JSON.stringify({ api_key: 'K', token: 'T' }) }));
    expect(applyAuthTarget('/1/boards', '', out)).toEqual({ path: '/1/boards', query: 'key=K&token=T' });
    const dup = { multi_query: [{ param_name: 'k' }, { param_name: 'k' }] };
    expect(codeOf(await apply(dup, { secret: 's' }))).toBe('auth_failed');
    expect(codeOf(await apply({ multi_query: [] }, { secret: 's' }))).toBe('auth_failed');
  });
});

describe('path', () => {
  it('prefixes the Telegram token path, keeping segment-safe characters', async () => {
    const out = must(await apply({ path: { prefix_template: '/bot{{secret}}' } }, { secret: '123:abc' }));
    expect(out.pathPrefix).toBe('/bot123:abc');
    expect(applyAuthTarget('/getUpdates', '', out)).toEqual({ path: '/bot123:abc/getUpdates', query: '' });
    expect(redactUrl('https://api.telegram.org/bot123:abc/getUpdates', out.urlSecrets)).toBe(
      'https://api.telegram.org/bot[REDACTED]/getUpdates',
    );
  });

  it('a secret can never add segments or traverse', async () => {
    const out = must(await apply({ path: { prefix_template: '/{{secret}}' } }, { secret: '../admin?x#y' }));
    expect(out.pathPrefix).toBe('/..%2Fadmin%3Fx%23y');
    const dots = must(await apply({ path: { prefix_template: '/{{secret}}' } }, { secret: '..' }));
    expect(dots.pathPrefix).toBe('/%2E%2E');
    expect(codeOf(await apply({ path: { prefix_template: '/{{secret}}' } }, { secret: '' }))).toBe(
      'auth_failed',
    );
  });

  it.each([
    'bot{{secret}}',
    '/bot{{secret}}/',
    '/a//{{secret}}',
    '/a?{{secret}}',
    '/a b{{secret}}',
    '/../{{secret}}',
  ])('refuses prefix template %j', async (template) => {
    expect(codeOf(await apply({ path: { prefix_template: template } }, { secret: 's' }))).toBe('auth_failed');
  });
});

describe('basic', () => {
  const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

  it('encodes a user:pass secret (split at the first colon)', async () => {
    const out = must(await apply({ basic: {} }, { secret: 'AC123:tok:en' }));
    expect(out.setHeaders).toEqual([['authorization', `Basic ${b64('AC123:tok:en')}`]]);
  });

  it('uses username/password fields of a JSON secret', async () => {
    const out = must(
      await apply({ basic: {} }, { secret: JSON.stringify({ username: 'api', password: 'päss' }) }),
    );
    expect(out.setHeaders).toEqual([['authorization', `Basic ${b64('api:päss')}`]]);
  });

  it('renders username/password templates', async () => {
    const spec = { basic: { username_template: 'api', password_template: '{{secret}}' } };
    const out = must(await apply(spec, { secret: 'key-1' }));
    expect(out.setHeaders).toEqual([['authorization', `Basic ${b64('api:key-1')}`]]);
  });

  it('fails closed on a secret without a colon, a username with a colon, or control characters', async () => {
    expect(codeOf(await apply({ basic: {} }, { secret: 'nocolon' }))).toBe('auth_failed');
    const spec = { basic: { username_template: '{{u}}', password_template: 'p' } };
    expect(codeOf(await apply(spec, { u: 'a:b' }))).toBe('auth_failed');
    expect(codeOf(await apply({ basic: {} }, { secret: 'a:b\nc' }))).toBe('auth_failed');
  });
});

describe('multi_header', () => {
  it('sets every header from the JSON secret', async () => {
    const spec = {
      multi_header: [
        { header_name: 'DD-API-KEY', value_template: '{{api_key}}' },
        { header_name: 'DD-APPLICATION-KEY', value_template: '{{app_key}}' },
      ],
    };
    const out = must(await apply(spec, { secret: JSON.stringify({ api_key: 'A', app_key: 'B' }) }));
    expect(out.setHeaders).toEqual([
      ['dd-api-key', 'A'],
      ['dd-application-key', 'B'],
    ]);
  });

  it('refuses duplicate names (case-insensitive) and a missing field', async () => {
    const dup = {
      multi_header: [
        { header_name: 'X-A', value_template: '{{a}}' },
        { header_name: 'x-a', value_template: '{{a}}' },
      ],
    };
    expect(codeOf(await apply(dup, { a: '1' }))).toBe('auth_failed');
    const spec = {
      multi_header: [
        { header_name: 'x-a', value_template: '{{a}}' },
        { header_name: 'x-b', value_template: '{{b}}' },
      ],
    };
    expect(codeOf(await apply(spec, { secret: JSON.stringify({ a: '1' }) }))).toBe('auth_failed');
  });
});

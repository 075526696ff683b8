import { describe, expect, it } from 'vitest';
import { apply, codeOf, must } from './helpers.js';
import { CLIENT_CERT, CLIENT_KEY, OTHER_CERT, OTHER_KEY } from './mtls-fixture.js';

describe('mtls', () => {
  it('returns the client cert/key (and optional CA) for the transport', async () => {
    const out = must(
      await apply({ mtls: {} }, { secret: JSON.stringify({ cert: CLIENT_CERT, key: CLIENT_KEY }) }),
    );
    expect(out).toEqual({
      setHeaders: [],
      appendQuery: [],
      urlSecrets: [],
      tls: { cert: CLIENT_CERT, key: CLIENT_KEY },
    });
    const withCa = must(
      await apply(
        { mtls: {} },
        { secret: JSON.stringify({ certPem: CLIENT_CERT, keyPem: CLIENT_KEY, ca: OTHER_CERT }) },
      ),
    );
    expect(withCa.tls).toEqual({ cert: CLIENT_CERT, key: CLIENT_KEY, ca: OTHER_CERT });
  });

  it.each([
    ['missing key', { cert: CLIENT_CERT }],
    ['garbage cert', { cert: 'not a pem', key: CLIENT_KEY }],
    [
      'garbage key',
      { cert: CLIENT_CERT, key: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' },
    ],
    ['mismatched pair', { cert: CLIENT_CERT, key: OTHER_KEY }],
    ['garbage ca', { cert: OTHER_CERT, key: OTHER_KEY, ca: 'nope' }],
  ])('fails closed: %s', async (_label, secret) => {
    expect(codeOf(await apply({ mtls: {} }, { secret: JSON.stringify(secret) }))).toBe('auth_failed');
  });

  it('takes no options', async () => {
    const spec = { mtls: { cert: 'x' } } as unknown as { mtls: Record<string, never> };
    expect(codeOf(await apply(spec, {}))).toBe('auth_failed');
  });
});

import { describe, expect, it } from 'vitest';
import {
  applyTokenGrant,
  buildTokenRequest,
  needsRefresh,
  parseOAuth2Secret,
  parseTokenResponse,
  serializeOAuth2Secret,
  type OAuth2Spec,
} from '../../../src/request-worker/auth/oauth2.js';
import { authClassHeaderNames } from '../../../src/request-worker/auth/index.js';
import { apply, codeOf, must } from './helpers.js';

const refreshSpec: OAuth2Spec = {
  grant_type: 'refresh_token',
  token_endpoint: 'https://accounts.spotify.com/api/token',
  scopes: ['playlist-read-private', ' user-read-email '],
};
const ccSpec: OAuth2Spec = {
  grant_type: 'client_credentials',
  token_endpoint: 'https://auth.example.com/oauth/token',
};
const form = (body: string) => Object.fromEntries(new URLSearchParams(body));

describe('oauth2 buildTokenRequest', () => {
  it('refresh_token grant, confidential client: Basic auth, scopes space-joined, no client_id in body', () => {
    const req = must(
      buildTokenRequest(refreshSpec, { clientId: 'cid', clientSecret: 'c:s', refreshToken: 'rt/1' }),
    );
    expect(req.url).toBe('https://accounts.spotify.com/api/token');
    expect(req.headers).toEqual([
      ['content-type', 'application/x-www-form-urlencoded'],
      ['accept', 'application/json'],
      ['authorization', `Basic ${Buffer.from('cid:c%3As').toString('base64')}`],
    ]);
    expect(req.body).toBe(
      'grant_type=refresh_token&refresh_token=rt%2F1&scope=playlist-read-private+user-read-email',
    );
  });

  it('public client: client_id in the body, no authorization header', () => {
    const req = must(
      buildTokenRequest({ ...refreshSpec, scopes: [] }, { clientId: 'native-app', refreshToken: 'rt' }),
    );
    expect(req.headers.map(([n]) => n)).not.toContain('authorization');
    expect(form(req.body)).toEqual({
      grant_type: 'refresh_token',
      refresh_token: 'rt',
      client_id: 'native-app',
    });
  });

  it('client_credentials grant', () => {
    const req = must(
      buildTokenRequest({ ...ccSpec, scopes: ['read'] }, { clientId: 'cid', clientSecret: 'sec' }),
    );
    expect(form(req.body)).toEqual({ grant_type: 'client_credentials', scope: 'read' });
    expect(codeOf(buildTokenRequest(ccSpec, { clientId: 'cid' }))).toBe('auth_failed');
  });

  it('fails closed on a missing refresh token, a non-https endpoint or a bad grant', () => {
    expect(codeOf(buildTokenRequest(refreshSpec, { clientId: 'cid', clientSecret: 's' }))).toBe(
      'oauth_refresh_required',
    );
    for (const endpoint of ['http://auth.example.com/token', 'https://u:p@auth.example.com/t', 'not a url']) {
      expect(
        codeOf(
          buildTokenRequest({ ...ccSpec, token_endpoint: endpoint }, { clientId: 'c', clientSecret: 's' }),
        ),
      ).toBe('auth_failed');
    }
    const bad = { ...ccSpec, grant_type: 'password' } as unknown as OAuth2Spec;
    expect(codeOf(buildTokenRequest(bad, { clientId: 'c', clientSecret: 's' }))).toBe('auth_failed');
  });
});

describe('oauth2 parseTokenResponse', () => {
  const now = 1_000_000;
  it('accepts a standard response', () => {
    expect(
      must(parseTokenResponse({ access_token: 'at', token_type: 'Bearer', expires_in: 3600 }, now)),
    ).toEqual({
      accessToken: 'at',
      expiresAtMs: now + 3_600_000,
    });
    expect(
      must(parseTokenResponse({ access_token: 'at', expires_in: '60', refresh_token: 'rt2' }, now)),
    ).toEqual({
      accessToken: 'at',
      expiresAtMs: now + 60_000,
      refreshToken: 'rt2',
    });
    expect(must(parseTokenResponse({ access_token: 'at' }, now)).expiresAtMs).toBe(now + 3_600_000);
  });

  it.each([
    [null],
    [[]],
    [{}],
    [{ access_token: '' }],
    [{ access_token: 'a\r\nb' }],
    [{ access_token: 5 }],
    [{ access_token: 'at', expires_in: -1 }],
    [{ access_token: 'at', expires_in: 'soon' }],
    [{ access_token: 'at', refresh_token: 7 }],
  ])('rejects malformed %j (auth_failed)', (json) => {
    expect(codeOf(parseTokenResponse(json, now))).toBe('auth_failed');
  });

  it('maps an OAuth error response to oauth_refresh_required', () => {
    const res = parseTokenResponse({ error: 'invalid_grant', error_description: 'revoked' }, now);
    expect(codeOf(res)).toBe('oauth_refresh_required');
    if (!res.ok) expect(res.error.details).toEqual({ oauthError: 'invalid_grant' });
  });
});

describe('oauth2 token state', () => {
  it('needsRefresh honours the skew', () => {
    expect(needsRefresh({}, 0)).toBe(true);
    expect(needsRefresh({ accessToken: 'a' }, 0)).toBe(false);
    expect(needsRefresh({ accessToken: 'a', accessTokenExpiresAtMs: 100_000 }, 39_999)).toBe(false);
    expect(needsRefresh({ accessToken: 'a', accessTokenExpiresAtMs: 100_000 }, 40_000)).toBe(true);
    expect(needsRefresh({ accessToken: 'a', accessTokenExpiresAtMs: 100_000 }, 99_000, 0)).toBe(false);
  });

  it('parses camelCase and snake_case secrets and round-trips the write-back JSON', () => {
    const state = must(
      parseOAuth2Secret('{"client_id":"c","refresh_token":"r","access_token_expires_at_ms":5}'),
    );
    expect(state).toEqual({ clientId: 'c', refreshToken: 'r', accessTokenExpiresAtMs: 5 });
    const next = applyTokenGrant(state, { accessToken: 'at', expiresAtMs: 10 });
    expect(JSON.parse(serializeOAuth2Secret(next))).toEqual({
      clientId: 'c',
      refreshToken: 'r',
      accessToken: 'at',
      accessTokenExpiresAtMs: 10,
    });
    expect(
      applyTokenGrant(state, { accessToken: 'x', expiresAtMs: 1, refreshToken: 'r2' }).refreshToken,
    ).toBe('r2');
    expect(codeOf(parseOAuth2Secret('{"refreshToken":"r"}'))).toBe('auth_failed');
    expect(codeOf(parseOAuth2Secret('[]'))).toBe('auth_failed');
  });
});

describe('oauth2 injection', () => {
  const now = Date.UTC(2026, 0, 1);
  const env = { now: () => now };
  const secret = (extra: object) => ({
    secret: JSON.stringify({ clientId: 'c', clientSecret: 'cs', refreshToken: 'rt', ...extra }),
  });

  it('injects the cached token as Bearer by default', async () => {
    const out = must(
      await apply(
        { oauth2: refreshSpec },
        secret({ accessToken: 'at-1', accessTokenExpiresAtMs: now + 1 }),
        {},
        {},
        env,
      ),
    );
    expect(out.setHeaders).toEqual([['authorization', 'Bearer at-1']]);
  });

  it('supports a custom inject header limited to {{access_token}}', async () => {
    const spec = {
      oauth2: { ...ccSpec, inject: { header_name: 'X-Token', value_template: 'OAuth {{access_token}}' } },
    };
    const out = must(await apply(spec, secret({ accessToken: 'at' }), {}, {}, env));
    expect(out.setHeaders).toEqual([['x-token', 'OAuth at']]);
    expect(authClassHeaderNames(spec)).toEqual(['x-token']);
    const leaky = { oauth2: { ...ccSpec, inject: { header_name: 'x', value_template: '{{clientSecret}}' } } };
    expect(codeOf(await apply(leaky, secret({ accessToken: 'at' }), {}, {}, env))).toBe('auth_failed');
  });

  it('requires a refresh when the token is missing or expired', async () => {
    expect(codeOf(await apply({ oauth2: refreshSpec }, secret({}), {}, {}, env))).toBe(
      'oauth_refresh_required',
    );
    const expired = secret({ accessToken: 'at', accessTokenExpiresAtMs: now });
    expect(codeOf(await apply({ oauth2: refreshSpec }, expired, {}, {}, env))).toBe('oauth_refresh_required');
  });

  it('refuses a non-https token endpoint at create time', async () => {
    const spec = { oauth2: { ...ccSpec, token_endpoint: 'http://auth.example.com/token' } };
    expect(codeOf(await apply(spec, secret({ accessToken: 'at' })))).toBe('auth_failed');
  });
});

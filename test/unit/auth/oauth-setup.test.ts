import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { buildConsentUrl, pkceChallenge } from '../../../src/request-worker/auth/oauth-setup.js';
import { codeOf, must } from './helpers.js';

const base = {
  authUrl: 'https://accounts.google.com/o/oauth2/v2/auth?access_type=offline',
  clientId: 'client-1.apps.googleusercontent.com',
  redirectUri: 'http://127.0.0.1:8787/callback',
  scopes: ['https://www.googleapis.com/auth/gmail.readonly', 'openid'],
};

describe('oauth setup: consent URL', () => {
  it('RFC 7636 appendix B vector', () => {
    expect(pkceChallenge('dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk')).toBe(
      'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM',
    );
  });

  it('builds the consent URL with PKCE S256 and the given state', () => {
    const verifier = 'a'.repeat(43);
    const out = must(buildConsentUrl({ ...base, state: 'xyz', codeVerifier: verifier }));
    const url = new URL(out.consentUrl);
    expect(url.origin + url.pathname).toBe('https://accounts.google.com/o/oauth2/v2/auth');
    expect(Object.fromEntries(url.searchParams)).toEqual({
      access_type: 'offline',
      response_type: 'code',
      client_id: base.clientId,
      redirect_uri: base.redirectUri,
      scope: 'https://www.googleapis.com/auth/gmail.readonly openid',
      state: 'xyz',
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    });
    expect(out.codeChallenge).toBe(url.searchParams.get('code_challenge'));
    expect(out.consentUrl).not.toContain(verifier);
  });

  it('generates random state and verifier', () => {
    const a = must(buildConsentUrl(base));
    const b = must(buildConsentUrl(base));
    expect(a.state).not.toBe(b.state);
    expect(a.codeVerifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(a.codeChallenge).toBe(pkceChallenge(a.codeVerifier));
  });

  it.each([
    [{ authUrl: 'http://accounts.example.com/auth' }],
    [{ authUrl: 'https://u:p@accounts.example.com/auth' }],
    [{ authUrl: 'nope' }],
    [{ redirectUri: 'http://evil.example.com/cb' }],
    [{ redirectUri: 'https://app.example.com/cb#frag' }],
    [{ clientId: ' ' }],
    [{ codeVerifier: 'short' }],
    [{ state: 'has space' }],
    [{ scopes: ['two words'] }],
  ])('rejects %j', (over) => {
    expect(codeOf(buildConsentUrl({ ...base, ...over }))).toBe('invalid_request');
  });

  it('accepts https and localhost redirects', () => {
    expect(buildConsentUrl({ ...base, redirectUri: 'https://app.example.com/cb' }).ok).toBe(true);
    expect(buildConsentUrl({ ...base, redirectUri: 'http://localhost:3000/cb' }).ok).toBe(true);
  });
});

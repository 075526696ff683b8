// `aivault oauth setup` as a user runs it (the compiled CLI, `npm run build` first): the consent URL carries
// response_type=code, client_id, redirect_uri, scope, state and a valid S256 PKCE challenge; an http
// (non-loopback) authorization URL or redirect URI is refused.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isolatedEnv, parseJson, runCli } from '../../support/run-cli.js';
import { tmpDir } from '../../support/tmp-dir.js';

interface SetupJson {
  provider: string;
  consentUrl: string;
  state: string;
  codeVerifier: string;
  codeChallenge: string;
  codeChallengeMethod: string;
}

const AUTH_URL = 'https://accounts.spotify.com/authorize';
const REDIRECT = 'http://127.0.0.1:8765/callback';

describe('aivault oauth setup', () => {
  const env = isolatedEnv(join(tmpDir(), 'vault'));
  const base = [
    'oauth',
    'setup',
    '--provider',
    'spotify',
    '--client-id',
    'e2e-client-id',
    '--redirect-uri',
    REDIRECT,
    '--scope',
    'user-read-private',
    '--scope',
    'playlist-read-private',
  ];

  it('prints a consent URL with every authorization-code + PKCE S256 parameter', async () => {
    const res = await runCli([...base, '--auth-url', AUTH_URL, '-v'], { env });
    expect(res.code, res.stderr).toBe(0);
    const out = parseJson<SetupJson>(res);
    const url = new URL(out.consentUrl);
    expect(`${url.origin}${url.pathname}`).toBe(AUTH_URL);
    const q = url.searchParams;
    expect(q.get('response_type')).toBe('code');
    expect(q.get('client_id')).toBe('e2e-client-id');
    expect(q.get('redirect_uri')).toBe(REDIRECT);
    expect(q.get('scope')).toBe('user-read-private playlist-read-private');
    expect(q.get('state')).toBe(out.state);
    expect(out.state).toMatch(/^[A-Za-z0-9_-]{32,}$/);
    expect(q.get('code_challenge_method')).toBe('S256');
    // RFC 7636: challenge = BASE64URL(SHA256(verifier)), 43 chars unpadded; the verifier never goes in the URL.
    expect(out.codeVerifier).toMatch(/^[A-Za-z0-9\-._~]{43,128}$/);
    const challenge = q.get('code_challenge');
    expect(challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(challenge).toBe(createHash('sha256').update(out.codeVerifier, 'ascii').digest('base64url'));
    expect(out.codeChallenge).toBe(challenge);
    expect(out.consentUrl).not.toContain(out.codeVerifier);
    expect(out.provider).toBe('spotify');
  });

  it('a fresh state and verifier every run', async () => {
    const a = parseJson<SetupJson>(await runCli([...base, '--auth-url', AUTH_URL, '-v'], { env }));
    const b = parseJson<SetupJson>(await runCli([...base, '--auth-url', AUTH_URL, '-v'], { env }));
    expect(a.state).not.toBe(b.state);
    expect(a.codeVerifier).not.toBe(b.codeVerifier);
  });

  it('the human output shows the consent URL', async () => {
    const res = await runCli([...base, '--auth-url', AUTH_URL], { env });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('https://accounts.spotify.com/authorize?');
    expect(res.stdout).toContain('code_challenge_method=S256');
  });

  it('refuses an http authorization URL, even on loopback', async () => {
    for (const authUrl of ['http://accounts.example.com/authorize', 'http://127.0.0.1:9999/authorize']) {
      const res = await runCli([...base, '--auth-url', authUrl], { env });
      expect(res.code).not.toBe(0);
      expect(res.stdout).not.toContain('code_challenge');
      expect(res.stderr).toMatch(/auth-url must use https/);
    }
  });

  it('refuses a non-loopback http redirect URI', async () => {
    const args = base.map((a) => (a === REDIRECT ? 'http://evil.example.com/cb' : a));
    const res = await runCli([...args, '--auth-url', AUTH_URL], { env });
    expect(res.code).not.toBe(0);
    expect(res.stderr).toMatch(/redirect-uri must be https/);
  });
});

import { describe, expect, it, vi } from 'vitest';
import { AivaultError } from '../../../src/core/errors.js';
import {
  createOAuth2TokenManager,
  refreshOAuth2Token,
  type TokenTransport,
} from '../../../src/request-worker/auth/oauth2-client.js';
import type { OAuth2Spec } from '../../../src/request-worker/auth/oauth2.js';
import { codeOf, must } from './helpers.js';

const spec: OAuth2Spec = { grant_type: 'refresh_token', token_endpoint: 'https://auth.example.com/token' };
const state = { clientId: 'c', clientSecret: 's', refreshToken: 'rt' };
const NOW = 1_000_000;
const respond =
  (status: number, body: unknown): TokenTransport =>
  async () => ({ status, body: typeof body === 'string' ? body : JSON.stringify(body) });

describe('refreshOAuth2Token', () => {
  it('exchanges and merges the grant (rotated refresh token kept)', async () => {
    const transport = vi.fn(respond(200, { access_token: 'at', expires_in: 60, refresh_token: 'rt2' }));
    const next = must(await refreshOAuth2Token(spec, state, transport, NOW));
    expect(next).toEqual({
      ...state,
      refreshToken: 'rt2',
      accessToken: 'at',
      accessTokenExpiresAtMs: NOW + 60_000,
    });
    expect(transport.mock.calls[0]?.[0].url).toBe('https://auth.example.com/token');
  });

  it.each([
    ['oauth error (400)', respond(400, { error: 'invalid_grant' }), 'oauth_refresh_required'],
    ['server error (500)', respond(500, 'oops'), 'oauth_refresh_required'],
    ['non-JSON 200', respond(200, '<html>'), 'auth_failed'],
    ['malformed 200', respond(200, { token: 'x' }), 'auth_failed'],
    ['oversized', respond(200, 'x'.repeat(70_000)), 'auth_failed'],
    [
      'network error',
      async () => {
        throw new Error('ECONNREFUSED');
      },
      'oauth_refresh_required',
    ],
    [
      'SSRF guard refusal',
      async () => {
        throw new AivaultError('policy_violation', 'refused to connect to auth.example.com');
      },
      'policy_violation',
    ],
  ] as const)('%s → %s', async (_label, transport, code) => {
    expect(codeOf(await refreshOAuth2Token(spec, state, transport, NOW))).toBe(code);
  });

  it('an unreachable endpoint explains itself, naming the host and no secret', async () => {
    const r = await refreshOAuth2Token(
      spec,
      state,
      async () => {
        throw new Error('ECONNREFUSED');
      },
      NOW,
    );
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.error.message).toContain('auth.example.com');
    expect(r.error.message).toContain('could not be reached');
  });
});

describe('createOAuth2TokenManager', () => {
  it('returns a fresh token untouched, refreshes + persists a stale one, single-flight', async () => {
    let calls = 0;
    const transport: TokenTransport = async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 5));
      return { status: 200, body: JSON.stringify({ access_token: `at${calls}`, expires_in: 3600 }) };
    };
    const persist = vi.fn(async (_id: string, _json: string) => {});
    const manager = createOAuth2TokenManager({ transport, persist, now: () => NOW });
    const fresh = { ...state, accessToken: 'cached', accessTokenExpiresAtMs: NOW + 3_600_000 };
    expect(must(await manager.ensureFresh('cred', spec, fresh))).toBe(fresh);
    expect(calls).toBe(0);

    const [a, b] = await Promise.all([
      manager.ensureFresh('cred', spec, state),
      manager.ensureFresh('cred', spec, state),
    ]);
    expect(calls).toBe(1);
    expect(must(a).accessToken).toBe('at1');
    expect(b).toBe(a);
    expect(persist).toHaveBeenCalledTimes(1);
    expect(JSON.parse(persist.mock.calls[0]?.[1] ?? '')).toMatchObject({ accessToken: 'at1', clientId: 'c' });

    const forced = must(await manager.ensureFresh('cred', spec, fresh, { force: true }));
    expect(forced.accessToken).toBe('at2');
  });

  it('a failed write-back fails closed', async () => {
    const manager = createOAuth2TokenManager({
      transport: respond(200, { access_token: 'at' }),
      persist: async () => {
        throw new Error('disk');
      },
      now: () => NOW,
    });
    expect(codeOf(await manager.ensureFresh('cred', spec, state))).toBe('vault_unavailable');
  });
});

describe('createOAuth2TokenManager: not hammering the token endpoint', () => {
  function clocked() {
    const clock = { t: NOW };
    let attempts = 0;
    let mode: 'down' | 'ok' = 'down';
    const transport: TokenTransport = async () => {
      attempts++;
      if (mode === 'down') throw new Error('ECONNREFUSED');
      return { status: 200, body: JSON.stringify({ access_token: `at${attempts}`, expires_in: 3600 }) };
    };
    const manager = createOAuth2TokenManager({ transport, persist: async () => {}, now: () => clock.t });
    return {
      clock,
      manager,
      attempts: () => attempts,
      setMode: (m: 'down' | 'ok') => (mode = m),
    };
  }

  it('a failing endpoint is retried after 1 s, 2 s, 4 s … (not by every call); a new grant retries at once', async () => {
    const h = clocked();
    const r1 = await h.manager.ensureFresh('cred', spec, state);
    expect(codeOf(r1)).toBe('oauth_refresh_required');
    expect(h.attempts()).toBe(1);

    h.clock.t += 500;
    const r2 = await h.manager.ensureFresh('cred', spec, state);
    expect(codeOf(r2)).toBe('oauth_refresh_required');
    expect(r2.ok ? '' : r2.error.message).toMatch(/could not be reached.*\(next attempt in 1 s\)/);
    expect(h.attempts()).toBe(1);

    h.clock.t += 600; // 1.1 s after the failure
    await h.manager.ensureFresh('cred', spec, state);
    expect(h.attempts()).toBe(2);
    h.clock.t += 1_900;
    await h.manager.ensureFresh('cred', spec, state);
    expect(h.attempts()).toBe(2); // second delay is 2 s
    h.clock.t += 200;
    await h.manager.ensureFresh('cred', spec, state);
    expect(h.attempts()).toBe(3);

    // The user stored a new refresh token (or client secret): that grant is tried now.
    await h.manager.ensureFresh('cred', spec, { ...state, refreshToken: 'rt-new' });
    expect(h.attempts()).toBe(4);
    // Other keys are not affected.
    await h.manager.ensureFresh('other', spec, state);
    expect(h.attempts()).toBe(5);
  });

  it('the delay is capped at 30 s, and a success clears it', async () => {
    const h = clocked();
    for (let i = 0; i < 10; i++) {
      await h.manager.ensureFresh('cred', spec, state);
      h.clock.t += 30_001;
    }
    expect(h.attempts()).toBe(10); // every attempt was due: the delay never grew past 30 s
    h.setMode('ok');
    expect(must(await h.manager.ensureFresh('cred', spec, state)).accessToken).toBe('at11');
    h.setMode('down');
    await h.manager.ensureFresh('cred', spec, state);
    h.clock.t += 1_001; // back to the first delay
    await h.manager.ensureFresh('cred', spec, state);
    expect(h.attempts()).toBe(13);
  });

  it('local failures (write-back) are not backed off: the next call tries again', async () => {
    let attempts = 0;
    const manager = createOAuth2TokenManager({
      transport: async () => {
        attempts++;
        return { status: 200, body: JSON.stringify({ access_token: 'at' }) };
      },
      persist: async () => {
        throw new Error('disk');
      },
      now: () => NOW,
    });
    await manager.ensureFresh('cred', spec, state);
    await manager.ensureFresh('cred', spec, state);
    expect(attempts).toBe(2);
  });

  it('a token from a forced refresh is not force-refreshed again for 10 s (persistent 401s)', async () => {
    const h = clocked();
    h.setMode('ok');
    const rejected = { ...state, accessToken: 'revoked', accessTokenExpiresAtMs: NOW + 3_600_000 };
    const first = must(await h.manager.ensureFresh('cred', spec, rejected, { force: true }));
    expect(first.accessToken).toBe('at1');
    expect(first.accessTokenForcedAtMs).toBe(NOW);
    h.clock.t += 5_000;
    const again = must(await h.manager.ensureFresh('cred', spec, first, { force: true }));
    expect(again).toBe(first); // unchanged: the caller returns the 401 instead of retrying
    expect(h.attempts()).toBe(1);
    h.clock.t += 5_001;
    expect(must(await h.manager.ensureFresh('cred', spec, first, { force: true })).accessToken).toBe('at2');
  });
});

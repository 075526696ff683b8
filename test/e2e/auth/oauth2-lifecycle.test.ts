/**
 * OAuth2 (spotify, refresh_token grant) through the daemon: the token endpoint (accounts.spotify.com, from
 * the compiled registry) and the API (api.spotify.com) are both dev-mapped to the local HTTPS mock.
 * Lifecycle: one refresh under 50 concurrent calls spread over every request worker; the refreshed token
 * persisted and reused after a restart; an upstream 401 → exactly one forced refresh + one retry; the token
 * endpoint down → oauth_refresh_required, with per-worker backoff instead of a token request per call; the
 * token endpoint goes through the connect-time SSRF guard.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Envelope } from '../../../src/core/broker/types.js';
import { echo, rejection, startAuthFixture, type AuthFixture } from './fixture.js';

const CLIENT_ID = 'spotify-e2e-client';
const CLIENT_SECRET = 'spotify-e2e-client-secret-5u9';
const REFRESH = 'spotify-e2e-refresh-token-Hq2';

let fx: AuthFixture;
let secretId: string;

const call = (path = '/v1/me/needs-token'): Envelope => ({
  capability: 'spotify/me',
  request: { method: 'GET', path },
});

async function stored(): Promise<Record<string, unknown>> {
  const v = await fx.vault.decryptSecret(secretId);
  try {
    return JSON.parse(v.reveal()) as Record<string, unknown>;
  } finally {
    v.dispose();
  }
}

/** Put an expired access token back into the vault (as if time had passed). */
async function expire(): Promise<void> {
  const cur = await stored();
  await fx.vault.rotateSecret(
    secretId,
    JSON.stringify({ ...cur, accessToken: 'expired-at', accessTokenExpiresAtMs: Date.now() - 60_000 }),
  );
}

/** Drop the forced-refresh stamp: the stored token is then one a normal refresh obtained. */
async function unstamp(): Promise<void> {
  const { accessTokenForcedAtMs: _stamp, ...cur } = await stored();
  await fx.vault.rotateSecret(secretId, JSON.stringify(cur));
}

const attempts = (): number => fx.upstream.tokens.attempts ?? 0;
const apiCalls = (): number => fx.seen('/v1/me/needs-token').length;

beforeAll(async () => {
  // Backoff capped at its first step (1 s) so the endpoint-down test waits on answers, not on 2 s + 4 s sleeps.
  fx = await startAuthFixture({ workers: 2, testing: { oauthBackoffMs: { initial: 1_000, max: 1_000 } } });
  secretId = await fx.addSecret(
    'SPOTIFY_OAUTH',
    JSON.stringify({
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      refreshToken: REFRESH,
      accessToken: 'stale-at',
      accessTokenExpiresAtMs: Date.now() - 1000,
    }),
  );
}, 90_000);
afterAll(() => fx?.close());

describe('oauth2 lifecycle through aivaultd', () => {
  it('refreshes an expired token ONCE for 50 concurrent calls across all request workers', async () => {
    fx.upstream.tokens.delayMs = 300; // every call arrives while the refresh is in flight
    const results = await Promise.all(Array.from({ length: 50 }, () => fx.invoke(call())));
    fx.upstream.tokens.delayMs = 0;
    expect(results.map((r) => r.status)).toEqual(Array(50).fill(200));
    for (const r of results) expect(echo(r.body).headers.authorization).toBe('Bearer at-1');
    expect(attempts()).toBe(1);
    expect(fx.upstream.tokens.issued).toBe(1);

    const [tokenReq] = fx.seen('/api/token');
    expect(tokenReq?.method).toBe('POST');
    expect(tokenReq?.headers.host).toBe('accounts.spotify.com');
    expect(tokenReq?.headers.authorization).toBe(
      `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`,
    );
    const form = new URLSearchParams(tokenReq?.body ?? '');
    expect(form.get('grant_type')).toBe('refresh_token');
    expect(form.get('refresh_token')).toBe(REFRESH);
    expect(form.get('scope')).toContain('user-read-private');
    // The client secret and refresh token never reach the API host.
    for (const r of fx.seen('/v1/me/needs-token')) {
      expect(JSON.stringify(r)).not.toContain(CLIENT_SECRET);
      expect(JSON.stringify(r)).not.toContain(REFRESH);
    }
    expect(await stored()).toMatchObject({
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      refreshToken: REFRESH,
      accessToken: 'at-1',
    });
    expect((await stored()).accessTokenExpiresAtMs).toBeGreaterThan(Date.now() + 3000_000);
  });

  it('persists the refreshed token: reused after a daemon restart, no second refresh', async () => {
    await fx.restart();
    const res = await fx.invoke(call());
    expect(res.status).toBe(200);
    expect(echo(res.body).headers.authorization).toBe('Bearer at-1');
    expect(attempts()).toBe(1);
  });

  it('an upstream 401 forces exactly one refresh and one retry', async () => {
    fx.upstream.tokens.required = 2; // at-1 is now "revoked"
    const before = apiCalls();
    const res = await fx.invoke(call());
    expect(res.status).toBe(200);
    expect(echo(res.body).headers.authorization).toBe('Bearer at-2');
    expect(attempts()).toBe(2);
    expect(apiCalls() - before).toBe(2);
    expect((await stored()).accessToken).toBe('at-2');
  });

  it('a 401 that persists after the refresh goes back to the caller (no loop), then costs no refresh for 10 s', async () => {
    fx.upstream.tokens.required = 999;
    await unstamp();
    const before = apiCalls();
    const res = await fx.invoke(call());
    expect(res.status).toBe(401);
    expect(attempts()).toBe(3);
    expect(apiCalls() - before).toBe(2);
    // The new token carries its forced-refresh stamp in the vault, so no worker refreshes it again for 10 s:
    // an upstream that rejects fresh tokens (missing scope) gets the call once, the token endpoint nothing.
    const again = await Promise.all(Array.from({ length: 10 }, () => fx.invoke(call())));
    expect(again.map((r) => r.status)).toEqual(Array(10).fill(401));
    expect(attempts()).toBe(3);
    expect(apiCalls() - before).toBe(12);
  });

  it('concurrent 401s share one forced refresh across workers', async () => {
    await unstamp();
    fx.upstream.tokens.required = fx.upstream.tokens.issued + 1; // the current token is rejected
    fx.upstream.tokens.delayMs = 200;
    const before = attempts();
    const results = await Promise.all(Array.from({ length: 20 }, () => fx.invoke(call())));
    fx.upstream.tokens.delayMs = 0;
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(attempts() - before).toBe(1);
    fx.upstream.tokens.required = undefined;
  });

  it('token endpoint down → oauth_refresh_required with a clear message (no secrets)', async () => {
    await expire();
    fx.upstream.tokens.mode = 'down';
    const down = await rejection(() => fx.invoke(call()));
    expect(down.code).toBe('oauth_refresh_required');
    expect(down.message).toContain('accounts.spotify.com');
    expect(down.message).toMatch(/could not be reached/);

    // Many agents keep calling while the endpoint is down: each request worker backs off (1 s, 2 s, … 30 s)
    // instead of sending the endpoint one token request per call. The worker that just failed answers
    // from its backoff; the other may try once.
    const beforeBurst = attempts();
    const burst = await Promise.all(Array.from({ length: 20 }, () => rejection(() => fx.invoke(call()))));
    expect(burst.map((r) => r.code)).toEqual(Array(20).fill('oauth_refresh_required'));
    expect(attempts() - beforeBurst).toBeLessThanOrEqual(1);
    expect(burst.some((r) => /next attempt in \d+ s/.test(r.message))).toBe(true);

    // A worker past its backoff makes a real attempt (its answer names no "next attempt").
    fx.upstream.tokens.mode = 'error';
    const failing = await vi.waitFor(
      async () => {
        const r = await rejection(() => fx.invoke(call()));
        expect(r.message).not.toMatch(/next attempt in/);
        return r;
      },
      { timeout: 10_000, interval: 50 },
    );
    expect(failing.code).toBe('oauth_refresh_required');
    expect(failing.message).toContain('HTTP 503');
    for (const m of [down.message, failing.message]) {
      expect(m).not.toContain(REFRESH);
      expect(m).not.toContain(CLIENT_SECRET);
    }
    // Nothing was written back: the stored state still holds the expired token.
    expect((await stored()).accessToken).toBe('expired-at');

    fx.upstream.tokens.mode = 'ok';
    // Each worker answers from its backoff until it expires; then its next call refreshes and succeeds.
    const res = await vi.waitFor(() => fx.invoke(call()), { timeout: 10_000, interval: 50 });
    expect(res.status).toBe(200);
    expect((await stored()).accessToken).toBe(`at-${fx.upstream.tokens.issued}`);
  });

  it('a pinned credential refreshes at the REGISTRY token endpoint even if broker.json is tampered', async () => {
    const brokerJson = join(fx.config.vaultDir, 'broker.json');
    const broker = JSON.parse(readFileSync(brokerJson, 'utf8')) as {
      credentials: Record<string, unknown>[];
    };
    const cred = broker.credentials.find((c) => c.provider === 'spotify');
    expect(cred).toBeDefined();
    Object.assign(cred as Record<string, unknown>, {
      source: 'custom',
      hosts: ['api.spotify.com'],
      auth: {
        oauth2: { grant_type: 'refresh_token', token_endpoint: 'https://upstream.test/oauth/token' },
      },
    });
    writeFileSync(brokerJson, JSON.stringify(broker, null, 2));
    await expire();
    const before = fx.seen('/api/token').length;
    const res = await fx.invoke(call());
    expect(res.status).toBe(200);
    expect(fx.seen('/oauth/token')).toHaveLength(0);
    expect(fx.seen('/api/token').length - before).toBe(1);
    expect(fx.seen('/api/token').at(-1)?.headers.host).toBe('accounts.spotify.com');
  });

  it('the token endpoint passes the connect-time SSRF guard', async () => {
    // A custom oauth2 credential whose token endpoint resolves to loopback (not dev-mapped).
    await fx.addCustom(
      'oauth-ssrf',
      { oauth2: { grant_type: 'refresh_token', token_endpoint: 'https://localhost/token' } },
      JSON.stringify({ clientId: 'c', refreshToken: 'ssrf-refresh-token-x1' }),
    );
    const before = fx.upstream.requests.length;
    const err = await rejection(() =>
      fx.invoke({ capability: 'oauth-ssrf/api', request: { method: 'GET', path: '/anything' } }),
    );
    expect(err.code).toBe('policy_violation');
    expect(err.message).not.toContain('ssrf-refresh-token-x1');
    expect(fx.upstream.requests.length).toBe(before);
  });

  it('no token material in audit lines', () => {
    const text = fx.auditText();
    expect(text.length).toBeGreaterThan(0);
    for (const needle of [CLIENT_SECRET, REFRESH, 'Bearer', 'ssrf-refresh-token-x1']) {
      expect(text).not.toContain(needle);
    }
  });
});

describe('in-process mode (AIVAULTD_DISABLE=1)', () => {
  it('refreshes an expired token once and writes it back to the vault', async () => {
    const { invokeInProcess } = await import('../../../src/request-worker/pipeline/in-process.js');
    await expire();
    const before = attempts();
    const res = await invokeInProcess(fx.config, fx.vault, call());
    expect(res.status).toBe(200);
    expect(attempts() - before).toBe(1);
    const saved = await stored();
    expect(saved.accessToken).not.toBe('expired-at');
    expect(saved.refreshToken).toBe(REFRESH);
    expect((await invokeInProcess(fx.config, fx.vault, call())).status).toBe(200);
    expect(attempts() - before).toBe(1);
  });
});

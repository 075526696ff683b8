/**
 * Cross-thread refresh coordination, unit level: the token manager under a lease (re-read after the lease
 * is granted, refresh only if still stale, write back while holding it), the crypto worker's LeaseTable
 * (FIFO, expiring) and the pipeline's per-thread fallback lease.
 */
import { describe, expect, it, vi } from 'vitest';
import {
  createOAuth2TokenManager,
  type TokenLease,
  type TokenTransport,
} from '../../../src/request-worker/auth/oauth2-client.js';
import {
  serializeOAuth2Secret,
  type OAuth2Spec,
  type OAuth2TokenState,
} from '../../../src/request-worker/auth/oauth2.js';
import { LeaseTable } from '../../../src/crypto-worker/crypto-service.js';
import { leaseVia } from '../../../src/request-worker/pipeline/oauth2.js';
import { codeOf, must } from './helpers.js';

const spec: OAuth2Spec = { grant_type: 'refresh_token', token_endpoint: 'https://auth.example.com/token' };
const NOW = 1_000_000;
const base: OAuth2TokenState = { clientId: 'c', clientSecret: 's', refreshToken: 'rt' };
const stale: OAuth2TokenState = { ...base, accessToken: 'old', accessTokenExpiresAtMs: NOW - 1 };

/** A fake "vault" of one secret, with a FIFO lease around it (what the crypto worker provides). */
function store(initial: OAuth2TokenState) {
  let value = serializeOAuth2Secret(initial);
  const table = new LeaseTable(10_000);
  const releases: (string | undefined)[] = [];
  const acquire = async (key: string): Promise<TokenLease> => {
    const id = await table.acquire(key);
    return {
      current: value,
      async release(next) {
        releases.push(next);
        if (next !== undefined) value = next;
        table.release(key, id);
      },
    };
  };
  return { acquire, releases, get: () => JSON.parse(value) as OAuth2TokenState };
}

function counting(): TokenTransport & { calls: number; bodies: string[] } {
  const t = (async (req) => {
    t.calls++;
    t.bodies.push(req.body);
    await new Promise((r) => setTimeout(r, 5));
    return {
      status: 200,
      body: JSON.stringify({ access_token: `at${t.calls}`, expires_in: 3600, refresh_token: `rt${t.calls}` }),
    };
  }) as TokenTransport & { calls: number; bodies: string[] };
  t.calls = 0;
  t.bodies = [];
  return t;
}

describe('token manager with a lease (one refresh across threads)', () => {
  it('two managers (two threads) refresh a stale token once; the second reuses the stored one', async () => {
    const s = store(stale);
    const transport = counting();
    const a = createOAuth2TokenManager({ transport, acquire: s.acquire, now: () => NOW });
    const b = createOAuth2TokenManager({ transport, acquire: s.acquire, now: () => NOW });
    const [ra, rb] = await Promise.all([
      a.ensureFresh('sec', spec, stale),
      b.ensureFresh('sec', spec, stale),
    ]);
    expect(transport.calls).toBe(1);
    expect(must(ra).accessToken).toBe('at1');
    expect(must(rb).accessToken).toBe('at1');
    expect(s.get()).toMatchObject({ accessToken: 'at1', refreshToken: 'rt1' });
    expect(s.releases).toEqual([expect.any(String), undefined]);
  });

  it('refreshes from the STORED state (latest rotated refresh token), not the caller’s copy', async () => {
    const s = store({ ...stale, refreshToken: 'rotated' });
    const transport = counting();
    const m = createOAuth2TokenManager({ transport, acquire: s.acquire, now: () => NOW });
    must(await m.ensureFresh('sec', spec, stale));
    expect(new URLSearchParams(transport.bodies[0]).get('refresh_token')).toBe('rotated');
  });

  it('force: refreshes only while the stored token is the rejected one', async () => {
    const fresh = { ...base, accessToken: 'live', accessTokenExpiresAtMs: NOW + 3_600_000 };
    const s = store(fresh);
    const transport = counting();
    const m = createOAuth2TokenManager({ transport, acquire: s.acquire, now: () => NOW });
    // Another thread already replaced the token this caller saw rejected: no refresh.
    const seenOld = { ...fresh, accessToken: 'rejected-earlier' };
    expect(must(await m.ensureFresh('sec', spec, seenOld, { force: true })).accessToken).toBe('live');
    expect(transport.calls).toBe(0);
    // The stored token itself was rejected: exactly one refresh.
    expect(must(await m.ensureFresh('sec', spec, fresh, { force: true })).accessToken).toBe('at1');
    expect(transport.calls).toBe(1);
  });

  it('force: a stored token from a forced refresh moments ago is kept (the 401 stands), and stamped on write', async () => {
    const fresh = { ...base, accessToken: 'live', accessTokenExpiresAtMs: NOW + 3_600_000 };
    const s = store(fresh);
    const transport = counting();
    const m = createOAuth2TokenManager({ transport, acquire: s.acquire, now: () => NOW });
    // A forced refresh writes the time it happened next to the token it got.
    const first = must(await m.ensureFresh('sec', spec, fresh, { force: true }));
    expect(first.accessToken).toBe('at1');
    expect(s.get().accessTokenForcedAtMs).toBe(NOW);
    // Another worker's caller still holds the same token without the stamp: under the lease it sees the
    // stamp and does not refresh again.
    const unstamped = { ...first, accessTokenForcedAtMs: undefined };
    expect(must(await m.ensureFresh('sec', spec, unstamped, { force: true })).accessToken).toBe('at1');
    expect(transport.calls).toBe(1);
    // A normal refresh (expiry) clears the stamp.
    const expired = { ...s.get(), accessTokenExpiresAtMs: NOW - 1 };
    const s2 = store(expired);
    const m2 = createOAuth2TokenManager({ transport, acquire: s2.acquire, now: () => NOW });
    must(await m2.ensureFresh('sec', spec, expired));
    expect(s2.get().accessTokenForcedAtMs).toBeUndefined();
  });

  it('a failed refresh releases the lease without writing', async () => {
    const s = store(stale);
    const m = createOAuth2TokenManager({
      transport: async () => ({ status: 503, body: 'down' }),
      acquire: s.acquire,
      now: () => NOW,
    });
    expect(codeOf(await m.ensureFresh('sec', spec, stale))).toBe('oauth_refresh_required');
    expect(s.releases).toEqual([undefined]);
    expect(s.get().accessToken).toBe('old');
  });

  it('a failed write-back fails closed; a failed lease is reported', async () => {
    const m = createOAuth2TokenManager({
      transport: counting(),
      acquire: async () => ({
        current: serializeOAuth2Secret(stale),
        release: async (v) => {
          if (v !== undefined) throw new Error('disk');
        },
      }),
      now: () => NOW,
    });
    expect(codeOf(await m.ensureFresh('sec', spec, stale))).toBe('vault_unavailable');
    const locked = createOAuth2TokenManager({
      transport: counting(),
      acquire: async () => {
        throw new Error('locked');
      },
      now: () => NOW,
    });
    expect(codeOf(await locked.ensureFresh('sec', spec, stale))).toBe('vault_unavailable');
  });
});

describe('LeaseTable', () => {
  it('is exclusive and FIFO per key; other keys are independent', async () => {
    const t = new LeaseTable(10_000);
    const order: string[] = [];
    const first = await t.acquire('k');
    const second = t.acquire('k').then((id) => (order.push('second'), id));
    const third = t.acquire('k').then((id) => (order.push('third'), id));
    expect(await t.acquire('other')).toBeGreaterThan(0);
    await Promise.resolve();
    expect(order).toEqual([]);
    t.release('k', first);
    const id2 = await second;
    expect(t.holds('k', first)).toBe(false);
    expect(t.holds('k', id2)).toBe(true);
    t.release('k', first); // stale release: ignored
    expect(t.holds('k', id2)).toBe(true);
    t.release('k', id2);
    t.release('k', await third);
    expect(order).toEqual(['second', 'third']);
  });

  it('expires a lease whose holder never releases', async () => {
    vi.useFakeTimers();
    try {
      const t = new LeaseTable(1000);
      const dead = await t.acquire('k');
      const next = t.acquire('k');
      vi.advanceTimersByTime(1001);
      const id = await next;
      expect(t.holds('k', dead)).toBe(false);
      expect(t.holds('k', id)).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('leaseVia fallback (no cross-thread lease: in-process mode)', () => {
  it('serializes holders and re-reads after each write', async () => {
    let value = 'v0';
    const writes: string[] = [];
    const acquire = leaseVia({
      devOverrides: async () => undefined,
      decrypt: async (ids) => new Map(ids.map((id) => [id, value])),
      write: async (_id, v) => {
        writes.push(v);
        value = v;
      },
    });
    const a = await acquire('s');
    let bGot: string | undefined;
    const b = acquire('s').then((l) => ((bGot = l.current), l));
    await new Promise((r) => setTimeout(r, 5));
    expect(bGot).toBeUndefined();
    await a.release('v1');
    await (await b).release();
    expect(bGot).toBe('v1');
    expect(writes).toEqual(['v1']);
  });
});

/**
 * Dashboard login codes, sessions and CSRF (src/front/dashboard/session.ts): single use, expiry,
 * cookie attributes, constant-time CSRF check, same-origin rule. Pure; a fake clock.
 */
import { describe, expect, it } from 'vitest';
import {
  CLEARED_COOKIE,
  DashboardAuth,
  LOGIN_CODE_TTL_MS,
  SESSION_COOKIE,
  cookieValue,
  sameOrigin,
  sessionCookie,
} from '../../../src/front/dashboard/session.js';

function clock(start = 1_000_000): { now: () => number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

describe('login codes', () => {
  it('are random, long and work exactly once', () => {
    const auth = new DashboardAuth();
    const a = auth.issueLoginCode();
    const b = auth.issueLoginCode();
    expect(a.code).not.toBe(b.code);
    expect(a.code).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const s = auth.redeem(a.code);
    expect(s).toBeDefined();
    expect(auth.redeem(a.code)).toBeUndefined();
    expect(auth.redeem(b.code)).toBeDefined();
  });

  it('expire after two minutes, and an expired code is burnt', () => {
    const c = clock();
    const auth = new DashboardAuth({ now: c.now });
    const { code, expiresAt } = auth.issueLoginCode();
    expect(expiresAt).toBe(c.now() + LOGIN_CODE_TTL_MS);
    c.advance(LOGIN_CODE_TTL_MS);
    expect(auth.redeem(code)).toBeUndefined();
    const fresh = auth.issueLoginCode();
    c.advance(LOGIN_CODE_TTL_MS - 1);
    expect(auth.redeem(fresh.code)).toBeDefined();
  });

  it('an unknown or empty code opens nothing', () => {
    const auth = new DashboardAuth();
    auth.issueLoginCode();
    expect(auth.redeem('')).toBeUndefined();
    expect(auth.redeem('x'.repeat(43))).toBeUndefined();
  });
});

describe('sessions', () => {
  it('are found by their cookie and expire', () => {
    const c = clock();
    const auth = new DashboardAuth({ now: c.now, sessionTtlMs: 1000 });
    const s = auth.redeem(auth.issueLoginCode().code);
    if (!s) throw new Error('no session');
    expect(s.id).not.toBe(s.csrf);
    expect(auth.session(`other=1; ${SESSION_COOKIE}=${s.id}`)).toEqual(s);
    expect(auth.session(`${SESSION_COOKIE}=${s.id}x`)).toBeUndefined();
    expect(auth.session('')).toBeUndefined();
    c.advance(1000);
    expect(auth.session(`${SESSION_COOKIE}=${s.id}`)).toBeUndefined();
  });

  it('end() logs out; clear() drops every session and code', () => {
    const auth = new DashboardAuth();
    const s1 = auth.redeem(auth.issueLoginCode().code);
    const s2 = auth.redeem(auth.issueLoginCode().code);
    const pending = auth.issueLoginCode();
    if (!s1 || !s2) throw new Error('no session');
    expect(auth.isLive(s1.id)).toBe(true);
    auth.end(s1.id);
    expect(auth.isLive(s1.id)).toBe(false);
    expect(auth.session(`${SESSION_COOKIE}=${s1.id}`)).toBeUndefined();
    expect(auth.session(`${SESSION_COOKIE}=${s2.id}`)).toBeDefined();
    auth.clear();
    expect(auth.session(`${SESSION_COOKIE}=${s2.id}`)).toBeUndefined();
    expect(auth.redeem(pending.code)).toBeUndefined();
  });

  it('the cookie is HttpOnly, SameSite=Strict, scoped to /aivault/ui/ and expires with the session', () => {
    const c = clock();
    const auth = new DashboardAuth({ now: c.now, sessionTtlMs: 60_000 });
    const s = auth.redeem(auth.issueLoginCode().code);
    if (!s) throw new Error('no session');
    const cookie = sessionCookie(s, c.now());
    expect(cookie).toBe(
      `${SESSION_COOKIE}=${s.id}; HttpOnly; SameSite=Strict; Path=/aivault/ui/; Max-Age=60`,
    );
    expect(CLEARED_COOKIE).toContain('Max-Age=0');
  });
});

describe('CSRF and origin', () => {
  it('accepts only the session’s own token', () => {
    const auth = new DashboardAuth();
    const s1 = auth.redeem(auth.issueLoginCode().code);
    const s2 = auth.redeem(auth.issueLoginCode().code);
    if (!s1 || !s2) throw new Error('no session');
    expect(auth.csrfOk(s1, s1.csrf)).toBe(true);
    expect(auth.csrfOk(s1, s2.csrf)).toBe(false);
    expect(auth.csrfOk(s1, undefined)).toBe(false);
    expect(auth.csrfOk(s1, '')).toBe(false);
    expect(auth.csrfOk(s1, s1.csrf.slice(1))).toBe(false);
    expect(auth.csrfOk(s1, s1.id)).toBe(false);
  });

  it('a POST must come from exactly this listener’s origin', () => {
    expect(sameOrigin('http://127.0.0.1:19790', '127.0.0.1:19790')).toBe(true);
    expect(sameOrigin('http://127.0.0.1:19791', '127.0.0.1:19790')).toBe(false);
    expect(sameOrigin('http://localhost:19790', '127.0.0.1:19790')).toBe(false);
    expect(sameOrigin('https://127.0.0.1:19790', '127.0.0.1:19790')).toBe(false);
    expect(sameOrigin('null', '127.0.0.1:19790')).toBe(false);
    expect(sameOrigin('', '127.0.0.1:19790')).toBe(false);
    expect(sameOrigin('http://', '')).toBe(false);
    // Origin: null (a no-referrer page's form POST) passes only with browser-set Sec-Fetch-Site: same-origin.
    expect(sameOrigin('null', '127.0.0.1:19790', 'same-origin')).toBe(true);
    expect(sameOrigin('null', '127.0.0.1:19790', 'cross-site')).toBe(false);
    expect(sameOrigin('null', '127.0.0.1:19790', 'same-site')).toBe(false);
    expect(sameOrigin('http://127.0.0.1:19790', '127.0.0.1:19790', 'cross-site')).toBe(false);
    expect(sameOrigin('http://127.0.0.1:19790', '127.0.0.1:19790', 'same-origin')).toBe(true);
  });

  it('cookieValue reads one cookie out of a header', () => {
    expect(cookieValue('a=1; b=2;c=3', 'b')).toBe('2');
    expect(cookieValue('ab=1', 'a')).toBe('');
    expect(cookieValue('', 'a')).toBe('');
  });
});

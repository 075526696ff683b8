/**
 * Dashboard login and sessions (issue 16), held in aivaultd's main-thread memory only (never on disk):
 *   - one-time login codes, issued to an operator through the operator channel (`aivault dashboard`),
 *     valid for LOGIN_CODE_TTL_MS and usable once;
 *   - sessions: a random id (the HttpOnly, SameSite=Strict cookie) and a per-session CSRF token that every
 *     state-changing request must echo in a form field or header; both expire.
 * Our own code on purpose: it is the UI's whole security boundary and needs no more than random bytes and
 * a constant-time compare. Pure apart from the clock and node:crypto; main thread.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';

export const LOGIN_CODE_TTL_MS = 2 * 60 * 1000;
export const SESSION_TTL_MS = 12 * 60 * 60 * 1000;
export const SESSION_COOKIE = 'aivault_ui';
export const UI_PREFIX = '/aivault/ui';
/** Bounds so that a flood of login requests cannot grow daemon memory. */
const MAX_CODES = 64;
const MAX_SESSIONS = 64;

export interface DashboardSession {
  readonly id: string;
  readonly csrf: string;
  readonly expiresAt: number;
}

export interface DashboardAuthOptions {
  now?: () => number;
  codeTtlMs?: number;
  sessionTtlMs?: number;
}

const token = (): string => randomBytes(32).toString('base64url');

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export class DashboardAuth {
  private readonly codes = new Map<string, number>();
  private readonly sessions = new Map<string, DashboardSession>();
  /** Told when sessions end early (logout, lock): open live-calls sockets of those sessions close. */
  private readonly endedListeners = new Set<() => void>();
  private readonly now: () => number;
  private readonly codeTtlMs: number;
  private readonly sessionTtlMs: number;

  constructor(opts: DashboardAuthOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.codeTtlMs = opts.codeTtlMs ?? LOGIN_CODE_TTL_MS;
    this.sessionTtlMs = opts.sessionTtlMs ?? SESSION_TTL_MS;
  }

  /** A fresh single-use login code (operator channel only). */
  issueLoginCode(): { code: string; expiresAt: number } {
    this.sweep();
    if (this.codes.size >= MAX_CODES) this.codes.delete(this.codes.keys().next().value as string);
    const code = token();
    const expiresAt = this.now() + this.codeTtlMs;
    this.codes.set(code, expiresAt);
    return { code, expiresAt };
  }

  /** Exchange a login code for a new session; undefined when unknown, used or expired (burnt either way). */
  redeem(code: string): DashboardSession | undefined {
    const until = this.codes.get(code);
    if (until === undefined) return undefined;
    this.codes.delete(code);
    if (until <= this.now()) return undefined;
    this.sweep();
    if (this.sessions.size >= MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value as string);
    const session: DashboardSession = {
      id: token(),
      csrf: token(),
      expiresAt: this.now() + this.sessionTtlMs,
    };
    this.sessions.set(session.id, session);
    return session;
  }

  /** The live session named by a Cookie header, if any. */
  session(cookieHeader: string): DashboardSession | undefined {
    const id = cookieValue(cookieHeader, SESSION_COOKIE);
    if (!id) return undefined;
    const s = this.sessions.get(id);
    if (!s) return undefined;
    if (s.expiresAt <= this.now()) {
      this.sessions.delete(id);
      return undefined;
    }
    return s;
  }

  /** Whether session `id` is still live (an open live-calls socket ends with its session). */
  isLive(id: string): boolean {
    const s = this.sessions.get(id);
    return s !== undefined && s.expiresAt > this.now();
  }

  /** Constant-time check of the CSRF token a POST carried. */
  csrfOk(session: DashboardSession, presented: string | undefined): boolean {
    return presented !== undefined && presented !== '' && sameSecret(session.csrf, presented);
  }

  /** End a session (logout). */
  end(id: string): void {
    this.sessions.delete(id);
    this.emitEnded();
  }

  /**
   * Drop every session and login code (vault lock, shutdown): a cookie or a login URL handed out before
   * works no more; the operator logs in again with a new `aivault dashboard`.
   */
  clear(): void {
    this.codes.clear();
    this.sessions.clear();
    this.emitEnded();
  }

  /** Call `listener` whenever sessions end early; returns the unsubscribe function. */
  onEnded(listener: () => void): () => void {
    this.endedListeners.add(listener);
    return () => this.endedListeners.delete(listener);
  }

  private emitEnded(): void {
    for (const l of this.endedListeners) l();
  }

  private sweep(): void {
    const now = this.now();
    for (const [c, until] of this.codes) if (until <= now) this.codes.delete(c);
    for (const [id, s] of this.sessions) if (s.expiresAt <= now) this.sessions.delete(id);
  }
}

/** The value of cookie `name` in a Cookie header ('' when absent). */
export function cookieValue(header: string, name: string): string {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return '';
}

/** The Set-Cookie value of a new session: HttpOnly, SameSite=Strict, scoped to the UI, expiring with it. */
export function sessionCookie(session: DashboardSession, now = Date.now()): string {
  const maxAge = Math.max(0, Math.floor((session.expiresAt - now) / 1000));
  return `${SESSION_COOKIE}=${session.id}; HttpOnly; SameSite=Strict; Path=${UI_PREFIX}/; Max-Age=${maxAge}`;
}

export const CLEARED_COOKIE = `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=${UI_PREFIX}/; Max-Age=0`;

/**
 * A state-changing request must come from a page of this listener. Its Origin must be exactly
 * `http://<Host>`. Browsers send `Origin: null` instead on a form POST from a page whose Referrer-Policy
 * is no-referrer (ours is), so then — and only then — the Fetch Metadata header must say same-origin
 * (browsers set Sec-Fetch-Site themselves; a page cannot). Anything else, a missing Origin included, is
 * refused: the UI is for browsers, and every browser we support sends both.
 */
export function sameOrigin(origin: string, host: string, fetchSite = ''): boolean {
  if (host === '') return false;
  if (origin === 'null') return fetchSite === 'same-origin';
  return origin === `http://${host}` && (fetchSite === '' || fetchSite === 'same-origin');
}

/**
 * A strict OAuth2 authorization server + resource server for the crash harness, on one real HTTPS listener
 * (test CA server cert, which covers `upstream.test`):
 *   POST /oauth/token  refresh_token grant with REFRESH TOKEN ROTATION: only the latest refresh token is
 *                      honoured; every refresh issues grant N+1 (a new access token AND a new refresh token)
 *                      and revokes the one presented. A revoked or unknown one → 400 invalid_grant.
 *   GET  /api/…        200 {"grant":N} when the bearer is grant N's unexpired access token, else 401.
 * Grants are numbered: 0 is the initial consent, later ones are refreshes or out-of-band re-consents.
 * Hooks let the harness SIGKILL the daemon at exact points: right after a token response was written
 * (`onIssued`) or when a freshly issued access token reaches the resource server (`onUse`).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createTestCa } from '../support/test-ca.js';

export interface Grant {
  readonly refreshToken: string;
  /** Absent for a re-consent (the state then holds only a refresh token). */
  readonly accessToken?: string;
  readonly accessExpiresAtMs: number;
}

export interface RotatingOAuthServer {
  readonly port: number;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Every grant ever made, by number. */
  readonly grants: Grant[];
  /** Number of the one grant whose refresh token is still honoured. */
  live(): number;
  /** Highest grant whose access token the resource server received (accepted), -1 if none. */
  usedMax(): number;
  /** Refresh requests answered with a new grant / refused (revoked or unknown refresh token). */
  readonly stats: { refreshed: number; refused: number };
  /** Called after a token response for grant `n` was written. */
  onIssued: ((n: number) => void) | undefined;
  /** Called when grant `n`'s access token arrives at the resource server; 'drop' kills the request. */
  onUse: ((n: number) => 'drop' | void) | undefined;
  /** Out-of-band re-consent: a new live refresh token (the old one is revoked). */
  reconsent(): number;
  /** The grant number of a refresh/access token, or -1. */
  grantOf(token: string | undefined, kind: 'refresh' | 'access'): number;
  close(): Promise<void>;
}

/** Shorter than aivaultd's 60 s refresh skew: every call through the daemon refreshes (and rotates). */
const EXPIRES_IN_S = 30;

export async function startRotatingOAuthServer(): Promise<RotatingOAuthServer> {
  const ca = createTestCa();
  const clientId = 'crash-client';
  const clientSecret = `cs-${randomBytes(12).toString('hex')}`;
  const basic = `Basic ${Buffer.from(`${clientId}:${clientSecret}`).toString('base64')}`;
  const grants: Grant[] = [
    // Grant 0 is the stored consent: its access token expired long ago, so the first call must refresh.
    {
      refreshToken: `rt0-${randomBytes(12).toString('hex')}`,
      accessToken: `at0-${randomBytes(12).toString('hex')}`,
      accessExpiresAtMs: 1_000,
    },
  ];
  let live = 0;
  let used = -1;
  const stats = { refreshed: 0, refused: 0 };
  const byAccess = new Map<string, number>([[grants[0]!.accessToken!, 0]]);
  const byRefresh = new Map<string, number>([[grants[0]!.refreshToken, 0]]);
  const newGrant = (withAccess: boolean): number => {
    const n = grants.length;
    const g: Grant = {
      refreshToken: `rt${n}-${randomBytes(12).toString('hex')}`,
      ...(withAccess ? { accessToken: `at${n}-${randomBytes(12).toString('hex')}` } : {}),
      accessExpiresAtMs: Date.now() + EXPIRES_IN_S * 1000,
    };
    grants.push(g);
    byRefresh.set(g.refreshToken, n);
    if (g.accessToken) byAccess.set(g.accessToken, n);
    live = n; // rotation: every older refresh token is revoked from here on
    return n;
  };

  const server: Server = createServer({ cert: ca.serverCert, key: ca.serverKey }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'https://upstream.test');
      const json = (status: number, body: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        res.end(JSON.stringify(body));
      };
      if (req.method === 'POST' && url.pathname === '/oauth/token') {
        if (req.headers.authorization !== basic) return json(401, { error: 'invalid_client' });
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        if (form.get('grant_type') !== 'refresh_token') return json(400, { error: 'unsupported_grant_type' });
        const presented = byRefresh.get(form.get('refresh_token') ?? '');
        if (presented === undefined || presented !== live) {
          stats.refused++;
          return json(400, { error: 'invalid_grant' });
        }
        const n = newGrant(true);
        stats.refreshed++;
        const g = grants[n]!;
        json(200, {
          access_token: g.accessToken,
          refresh_token: g.refreshToken,
          token_type: 'bearer',
          expires_in: EXPIRES_IN_S,
        });
        api.onIssued?.(n);
        return;
      }
      if (req.method === 'GET' && url.pathname.startsWith('/api/')) {
        const auth = req.headers.authorization ?? '';
        const n = auth.startsWith('Bearer ') ? byAccess.get(auth.slice(7)) : undefined;
        if (n === undefined || grants[n]!.accessExpiresAtMs <= Date.now()) {
          return json(401, { error: 'invalid_token' });
        }
        used = Math.max(used, n);
        if (api.onUse?.(n) === 'drop') {
          req.socket.destroy();
          return;
        }
        return json(200, { grant: n });
      }
      json(404, { error: 'not_found' });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const api: RotatingOAuthServer = {
    port: (server.address() as AddressInfo).port,
    clientId,
    clientSecret,
    grants,
    live: () => live,
    usedMax: () => used,
    stats,
    onIssued: undefined,
    onUse: undefined,
    reconsent: () => newGrant(false),
    grantOf(token, kind) {
      if (token === undefined) return -1;
      return (kind === 'refresh' ? byRefresh : byAccess).get(token) ?? -1;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
  return api;
}

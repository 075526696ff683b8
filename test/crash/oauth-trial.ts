/**
 * The crash harness's `oauth-writeback` trials: aivaultd refreshes an expired OAuth2 access token against
 * a token endpoint that ROTATES the refresh token on every refresh (oauth-endpoint.ts: only the latest one
 * is honoured), writes the new state back into the vault, and is SIGKILLed at a random instant:
 *   random       some ms after the invokes start (anywhere: start-up, lease, token request, write-back, call)
 *   after-token  0–40 ms after the endpoint wrote a token response (aimed at the receive → fsync window)
 *   at-use       the moment a freshly issued access token reaches the resource server
 * Invariants checked after every trial:
 *  - the vault opens and every record decrypts; the token secret parses, keeps its client credentials, and
 *    holds a refresh token the endpoint issued, with the access token of that same grant (never a mix);
 *  - DURABLE BEFORE USE: if an access token of grant N reached the upstream (a fortiori if an invoke with
 *    it was acknowledged to its caller), the vault holds grant N or later;
 *  - the vault is at most the one unacknowledged rotation behind the endpoint. That case (killed between
 *    the endpoint issuing and the fsync) cannot be avoided by any client of a strictly rotating endpoint;
 *    it is counted, a fresh daemon must then fail cleanly with `oauth_refresh_required`, and the harness
 *    re-consents (`secrets rotate`) as a user would;
 *  - the audit log still reads, and a fresh (autostarted) daemon invokes successfully and persists the
 *    rotation it acknowledged.
 */
import { parseOAuth2Secret } from '../../src/request-worker/auth/oauth2.js';
import { createDevHome } from '../support/dev-vault.js';
import { startRotatingOAuthServer, type RotatingOAuthServer } from './oauth-endpoint.js';
import { killDaemon, run, verifyVault } from './procs.js';

export type OAuthKill = 'random' | 'after-token' | 'at-use';
export const OAUTH_KILLS: readonly OAuthKill[] = ['random', 'after-token', 'at-use'];

const SECRET = 'OAUTH_APP';
const CAPABILITY = 'oauthc/api';

export interface OAuthContext {
  readonly home: string;
  readonly vaultDir: string;
  readonly env: Record<string, string>;
  readonly server: RotatingOAuthServer;
}

export interface OAuthTrialOutcome {
  kill: OAuthKill;
  /** ms after the invokes started when the daemon was SIGKILLed; -1 when the kill point never came. */
  killedAtMs: number;
  /** Invokes acknowledged (exit 0 with the upstream's answer) during the trial, of `invokes`. */
  acked: number;
  invokes: number;
  /** Refresh-token rotations the endpoint made during the trial (before the recovery check). */
  rotations: number;
  /** The vault kept the previous refresh token because the kill came between issue and fsync. */
  lostUnacknowledged: boolean;
  problem?: string;
}

function stateJson(server: RotatingOAuthServer, grant: number): string {
  const g = server.grants[grant]!;
  return JSON.stringify({
    clientId: server.clientId,
    clientSecret: server.clientSecret,
    refreshToken: g.refreshToken,
    ...(g.accessToken ? { accessToken: g.accessToken, accessTokenExpiresAtMs: g.accessExpiresAtMs } : {}),
  });
}

async function must(what: string, r: Promise<{ code: number | null; out: string }>): Promise<void> {
  const res = await r;
  if (res.code !== 0) throw new Error(`${what} failed: ${res.out.slice(0, 400)}`);
}

/** A dev vault (its own dir and daemon) with an oauth2 credential whose stored access token has expired. */
export async function setupOAuth(home: string): Promise<OAuthContext> {
  const server = await startRotatingOAuthServer();
  // Its own HOME under the harness's: upstream.test resolves to the endpoint, the test CA is trusted; two
  // request workers, so concurrent refreshes queue on the crypto worker's lease.
  const dh = createDevHome({
    parent: home,
    prefix: 'oauth-',
    upstream: server.port,
    inherit: true,
    env: { AIVAULTD_WORKERS: '2' },
  });
  const env = dh.env;
  try {
    await must('oauth init --dev', run(['init', '--dev'], env));
    const created = await run(
      ['-v', 'secrets', 'create', '--name', SECRET, '--value-stdin'],
      env,
      stateJson(server, 0),
    );
    if (created.code !== 0) throw new Error(`oauth secret create failed: ${created.out.slice(0, 400)}`);
    const id = (JSON.parse(created.out) as { secret: { id: string } }).secret.id;
    await must(
      'oauth credential create',
      run(
        [
          'credential',
          'create',
          'oauthc',
          '--provider',
          'oauthc',
          '--secret-ref',
          `vault:secret:${id}`,
          '--auth',
          'oauth2',
          '--grant-type',
          'refresh_token',
          '--token-endpoint',
          'https://upstream.test/oauth/token',
          '--host',
          'upstream.test',
        ],
        env,
      ),
    );
    await must(
      'oauth capability create',
      run(
        ['capability', 'create', CAPABILITY, '--credential', 'oauthc', '--method', 'GET', '--path', '/api'],
        env,
      ),
    );
  } catch (err) {
    await server.close();
    throw err;
  }
  return { home: dh.home, vaultDir: dh.vaultDir, env, server };
}

export async function closeOAuth(ctx: OAuthContext): Promise<void> {
  killDaemon(ctx.vaultDir);
  await ctx.server.close();
}

/**
 * After a failed trial: stop the daemon and re-consent, so later trials start from a known-good state
 * (what a user would do). Returns a problem when even that fails.
 */
export async function resetOAuth(ctx: OAuthContext): Promise<string | undefined> {
  killDaemon(ctx.vaultDir);
  const n = ctx.server.reconsent();
  const r = await run(
    ['secrets', 'rotate', '--id', SECRET, '--value-stdin'],
    ctx.env,
    stateJson(ctx.server, n),
  );
  return r.code === 0 ? undefined : `re-consent after a failure failed: ${r.out.slice(0, 200)}`;
}

/** One invoke through the (auto-started) daemon: the grant it was served with, or undefined. */
async function invoke(ctx: OAuthContext): Promise<{ grant?: number; out: string; code: number | null }> {
  // Generous timeouts: a daemon killed while holding the vault lock leaves it to go stale (10 s).
  const r = await run(
    ['invoke', CAPABILITY, '--path', '/api/data', '--timeout-ms', '30000'],
    ctx.env,
    undefined,
    60_000,
  );
  const m = r.code === 0 ? /"grant":(\d+)/.exec(r.out) : null;
  return { ...(m ? { grant: Number(m[1]) } : {}), out: r.out, code: r.code };
}

/** The stored token state against the endpoint's view; returns the stored grant number or a problem. */
function checkStored(
  server: RotatingOAuthServer,
  plain: Map<string, string>,
  ackedMax: number,
): { grant: number } | { problem: string } {
  const raw = plain.get(SECRET);
  if (raw === undefined) return { problem: `${SECRET} is missing` };
  const state = parseOAuth2Secret(raw);
  if (!state.ok) return { problem: `${SECRET} no longer parses as oauth2 state: ${state.error.message}` };
  const s = state.value;
  if (s.clientId !== server.clientId || s.clientSecret !== server.clientSecret)
    return { problem: `${SECRET} lost its client credentials` };
  const k = server.grantOf(s.refreshToken, 'refresh');
  if (k < 0) return { problem: `${SECRET} holds a refresh token the endpoint never issued` };
  if (s.accessToken !== server.grants[k]!.accessToken)
    return { problem: `${SECRET} mixes grant ${k}'s refresh token with another grant's access token` };
  const used = server.usedMax();
  if (k < used)
    return {
      problem: `access token of grant ${used} reached the upstream but the vault holds grant ${k} (write-back not durable before use)`,
    };
  if (k < ackedMax)
    return { problem: `an invoke with grant ${ackedMax} was acknowledged but the vault holds grant ${k}` };
  const live = server.live();
  if (k !== live && k !== live - 1)
    return { problem: `the vault is ${live - k} refresh-token rotations behind the endpoint` };
  return { grant: k };
}

export async function oauthTrial(
  ctx: OAuthContext,
  rand: () => number,
  kill: OAuthKill,
): Promise<OAuthTrialOutcome> {
  const { server } = ctx;
  const liveBefore = server.live();
  const started = Date.now();
  let killedAtMs = -1;
  const doKill = (): void => {
    if (killedAtMs < 0 && killDaemon(ctx.vaultDir)) killedAtMs = Date.now() - started;
  };
  let timer: NodeJS.Timeout | undefined;
  if (kill === 'random') {
    timer = setTimeout(doKill, Math.floor(20 + rand() * 1500));
  } else if (kill === 'after-token') {
    // After the 1st, 2nd or 3rd rotation of this trial, 0–40 ms later.
    let skip = Math.floor(rand() * 3);
    const delay = Math.floor(rand() * 41);
    server.onIssued = () => {
      if (skip-- > 0) return;
      server.onIssued = undefined;
      if (delay === 0) doKill();
      else timer = setTimeout(doKill, delay);
    };
  } else {
    server.onUse = (n) => {
      if (n <= liveBefore) return undefined;
      server.onUse = undefined;
      doKill();
      return 'drop';
    };
  }
  const invokes = 3;
  const results = await Promise.all(
    Array.from({ length: invokes }, async () => {
      await new Promise((r) => setTimeout(r, Math.floor(rand() * 300)));
      return invoke(ctx);
    }),
  );
  clearTimeout(timer);
  server.onIssued = undefined;
  server.onUse = undefined;
  const acks = results.filter((r) => r.grant !== undefined).map((r) => r.grant!);
  const outcome: OAuthTrialOutcome = {
    kill,
    killedAtMs,
    acked: acks.length,
    invokes,
    rotations: server.live() - liveBefore,
    lostUnacknowledged: false,
  };
  const ackedMax = Math.max(-1, ...acks);
  let storedGrant = -1;
  const problem = await verifyVault(ctx.vaultDir, ctx.home, new Map(), (_vault, plain) => {
    const s = checkStored(server, plain, ackedMax);
    if ('problem' in s) return s.problem;
    storedGrant = s.grant;
    return undefined;
  });
  if (problem) return { ...outcome, problem };
  const audit = await run(['audit', '--limit', '5'], ctx.env);
  if (audit.code !== 0)
    return { ...outcome, problem: `audit unreadable after the kill: ${audit.out.slice(0, 200)}` };

  if (storedGrant !== server.live()) {
    // The one unavoidable loss: rotated at the endpoint, killed before the fsync, never acknowledged.
    outcome.lostUnacknowledged = true;
    const refused = await invoke(ctx);
    if (refused.code === 0 || !refused.out.includes('oauth_refresh_required'))
      return {
        ...outcome,
        problem: `a revoked refresh token should fail with oauth_refresh_required, got exit ${refused.code}: ${refused.out.slice(0, 200)}`,
      };
    const n = server.reconsent();
    const rotated = await run(
      ['secrets', 'rotate', '--id', SECRET, '--value-stdin'],
      ctx.env,
      stateJson(server, n),
    );
    if (rotated.code !== 0) return { ...outcome, problem: `re-consent failed: ${rotated.out.slice(0, 200)}` };
  }

  // Recovery: a fresh daemon (autostarted when the old one was killed) refreshes, calls, and persists.
  const after = await invoke(ctx);
  if (after.grant === undefined)
    return {
      ...outcome,
      problem: `no successful invoke after the kill (exit ${after.code}): ${after.out.slice(0, 300)}`,
    };
  if (after.grant !== server.live())
    return {
      ...outcome,
      problem: `recovery invoke used grant ${after.grant}, endpoint is at ${server.live()}`,
    };
  const final = await verifyVault(ctx.vaultDir, ctx.home, new Map(), (_vault, plain) => {
    const s = checkStored(server, plain, after.grant!);
    if ('problem' in s) return s.problem;
    return s.grant === server.live()
      ? undefined
      : `acknowledged rotation ${server.live()} is not in the vault`;
  });
  return final ? { ...outcome, problem: `after recovery: ${final}` } : outcome;
}

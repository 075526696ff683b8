/**
 * Crash-safety harness: SIGKILLs `aivault` writers (secret create / rotate / rotate-master) and aivaultd
 * (while it appends audit events for in-flight calls) at random instants, then checks that:
 *  - the vault still opens (vault.json, kek.key, every secrets/*.json parse; no staging file is listed),
 *  - every ACKNOWLEDGED write (the CLI exited 0 before the kill) is present and decrypts to its value,
 *  - an unacknowledged write left either the old or the new state, never a third one,
 *  - the audit log still reads (`aivault audit`).
 * `oauth-writeback` trials SIGKILL aivaultd while it refreshes an OAuth2 token against an endpoint that
 * rotates the refresh token, and check that every token the daemon used is durably in the vault and a
 * fresh daemon recovers (oauth-trial.ts).
 * Used by test/crash/crash.test.ts (a few trials in `npm test`) and test/crash/run.ts (`npm run crash-test`,
 * ≥ 200 trials, writes bench/results/crash-<date>.json).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isolatedEnv, headerCredentialArgs } from '../support/run-cli.js';
import {
  closeOAuth,
  OAUTH_KILLS,
  oauthTrial,
  resetOAuth,
  setupOAuth,
  type OAuthContext,
  type OAuthKill,
  type OAuthTrialOutcome,
} from './oauth-trial.js';
import { killDaemon, run, runKilled, verifyVault, type Expect } from './procs.js';

export type Op = 'create' | 'rotate' | 'rotate-master' | 'daemon-kill' | 'oauth-writeback';
export const ALL_OPS: readonly Op[] = ['create', 'rotate', 'rotate-master', 'daemon-kill', 'oauth-writeback'];

export interface TrialResult {
  op: Op;
  /** When the kill was scheduled (CLI ops, daemon-kill) or happened (oauth-writeback; -1 = never came). */
  killAfterMs: number;
  acknowledged: boolean;
  ok: boolean;
  problem?: string;
  /** oauth-writeback only. */
  oauth?: { kill: OAuthKill; acked: number; invokes: number; rotations: number; lostUnacknowledged: boolean };
}

export interface OpStats {
  trials: number;
  acknowledged: number;
  killedMidway: number;
  failures: number;
  /** oauth-writeback: trials whose daemon was actually SIGKILLed, refresh-token rotations, unacknowledged rotations lost. */
  daemonKilled?: number;
  rotations?: number;
  lostUnacknowledged?: number;
  byKill?: Record<string, number>;
}

export interface CrashSummary {
  trials: number;
  byOp: Record<string, OpStats>;
  failures: TrialResult[];
  durationMs: number;
}

export interface CrashOptions {
  seed?: number;
  log?: (s: string) => void;
  /** Ops to draw from (default: all). */
  ops?: readonly Op[];
  /** oauth-writeback kill points, used in turn (default: drawn at random). */
  oauthKills?: readonly OAuthKill[];
}

/** Seed one acknowledged secret and an invocable capability (daemon-kill trials: no upstream needed, calls
 * fail fast with upstream_unreachable but are audited). */
async function setupMain(env: Record<string, string>, expected: Expect): Promise<void> {
  const init = await run(['init'], env);
  if (init.code !== 0) throw new Error(`init failed: ${init.out}`);
  const seedValue = `seed-${randomBytes(12).toString('hex')}`;
  const s = await run(['-v', 'secrets', 'create', '--name', 'SEED', '--value-stdin'], env, seedValue);
  if (s.code !== 0) throw new Error(`seed failed: ${s.out}`);
  expected.set('SEED', { values: [seedValue], required: true });
  const id = (JSON.parse(s.out) as { secret: { id: string } }).secret.id;
  await run(
    [
      ...headerCredentialArgs({
        id: 'c',
        secretRef: `vault:secret:${id}`,
        header: 'x-k',
        template: '{{secret}}',
        host: 'crash.invalid',
      }),
    ],
    env,
  );
  await run(['capability', 'create', 'c/api', '--credential', 'c', '--method', 'GET', '--path', '/'], env);
}

export async function runCrashTrials(trials: number, opts: CrashOptions = {}): Promise<CrashSummary> {
  const started = Date.now();
  const home = mkdtempSync(join(tmpdir(), 'aivault-crash-'));
  const vaultDir = join(home, 'vault');
  const env = isolatedEnv(vaultDir, { HOME: home, AIVAULTD_WORKERS: '1' });
  const expected: Expect = new Map();
  const results: TrialResult[] = [];
  const ops = opts.ops ?? ALL_OPS;
  let oauth: OAuthContext | undefined;
  let oauthTrials = 0;
  let rnd = opts.seed ?? Date.now();
  const rand = (): number => {
    rnd = (rnd * 1103515245 + 12345) % 2147483648;
    return rnd / 2147483648;
  };
  try {
    // The classic ops share one file-key vault with a seeded secret and an invocable capability.
    if (ops.some((op) => op !== 'oauth-writeback')) await setupMain(env, expected);
    // OAuth write-back trials use their own dev vault, daemon and rotating token endpoint.
    if (ops.includes('oauth-writeback')) oauth = await setupOAuth(home);
    let n = 0;
    for (let t = 0; t < trials; t++) {
      const op = ops[Math.floor(rand() * ops.length)] as Op;
      // CLI writes take ~0.4–2 s here (node start-up, key load, fsyncs): spread kills across all of it.
      let killAfterMs = Math.floor(20 + rand() * (op === 'daemon-kill' ? 700 : 2500));
      let acknowledged = false;
      let problem: string | undefined;
      let oauthDetail: TrialResult['oauth'];
      if (op === 'oauth-writeback') {
        const kills = opts.oauthKills;
        const kill = kills?.length
          ? (kills[oauthTrials % kills.length] as OAuthKill)
          : (OAUTH_KILLS[Math.floor(rand() * OAUTH_KILLS.length)] as OAuthKill);
        oauthTrials++;
        const o = await oauthTrial(oauth!, rand, kill).catch((err: unknown): OAuthTrialOutcome => ({
          kill,
          killedAtMs: -1,
          acked: 0,
          invokes: 0,
          rotations: 0,
          lostUnacknowledged: false,
          problem: `trial threw: ${(err as Error).message}`,
        }));
        if (o.problem) {
          const reset = await resetOAuth(oauth!);
          if (reset) o.problem += `; ${reset}`;
        }
        killAfterMs = o.killedAtMs;
        acknowledged = o.acked > 0;
        problem = o.problem;
        oauthDetail = {
          kill: o.kill,
          acked: o.acked,
          invokes: o.invokes,
          rotations: o.rotations,
          lostUnacknowledged: o.lostUnacknowledged,
        };
      } else if (op === 'create') {
        const name = `S${n++}`;
        const value = `v-${randomBytes(16).toString('hex')}`;
        const r = await runKilled(
          ['secrets', 'create', '--name', name, '--value-stdin'],
          env,
          value,
          killAfterMs,
        );
        acknowledged = r.code === 0;
        expected.set(name, { values: [value], required: acknowledged });
      } else if (op === 'rotate') {
        const required = [...expected.keys()].filter((k) => expected.get(k)!.required);
        // After a failed trial nothing is required any more: rotate any name we know of.
        const names = required.length > 0 ? required : [...expected.keys()];
        const name = names[Math.floor(rand() * names.length)] as string;
        const value = `r-${randomBytes(16).toString('hex')}`;
        const r = await runKilled(
          ['secrets', 'rotate', '--id', name, '--value-stdin'],
          env,
          value,
          killAfterMs,
        );
        acknowledged = r.code === 0;
        const prev = expected.get(name)!;
        expected.set(name, {
          values: acknowledged ? [value] : [...prev.values, value],
          required: prev.required || acknowledged,
        });
      } else if (op === 'rotate-master') {
        const r = await runKilled(
          ['rotate-master', '--new-key', randomBytes(32).toString('base64')],
          env,
          undefined,
          killAfterMs,
        );
        acknowledged = r.code === 0;
      } else {
        // Several in-flight calls through an autostarted daemon, which is SIGKILLed mid-way.
        const calls = [1, 2, 3].map(() =>
          runKilled(['invoke', 'c/api', '--path', '/x', '--timeout-ms', '2000'], env, undefined, 5000),
        );
        await new Promise((r) => setTimeout(r, killAfterMs));
        acknowledged = killDaemon(vaultDir); // false: daemon not up yet
        await Promise.all(calls);
      }
      if (op !== 'oauth-writeback') problem = await verifyVault(vaultDir, home, expected);
      if (!problem && op === 'daemon-kill') {
        const audit = await run(['audit', '--limit', '5'], env);
        if (audit.code !== 0) problem = `audit unreadable after daemon kill: ${audit.out.slice(0, 200)}`;
      }
      results.push({
        op,
        killAfterMs,
        acknowledged,
        ok: !problem,
        ...(problem ? { problem } : {}),
        ...(oauthDetail ? { oauth: oauthDetail } : {}),
      });
      const extra = oauthDetail
        ? ` ${oauthDetail.kill} acked=${oauthDetail.acked}/${oauthDetail.invokes} rotations=${oauthDetail.rotations}${oauthDetail.lostUnacknowledged ? ' lost-unacked' : ''}`
        : '';
      opts.log?.(
        `trial ${t + 1}/${trials} ${op} kill@${killAfterMs}ms ack=${acknowledged}${extra} ${problem ?? 'ok'}`,
      );
      if (problem && op !== 'oauth-writeback') {
        // Keep going from a consistent baseline: forget what we can no longer assert about.
        for (const [k, v] of expected) expected.set(k, { ...v, required: false });
      }
    }
  } finally {
    killDaemon(vaultDir);
    if (oauth) await closeOAuth(oauth);
    rmSync(home, { recursive: true, force: true });
  }
  const byOp: CrashSummary['byOp'] = {};
  for (const r of results) {
    const b = (byOp[r.op] ??= { trials: 0, acknowledged: 0, killedMidway: 0, failures: 0 });
    b.trials++;
    if (r.acknowledged) b.acknowledged++;
    else b.killedMidway++;
    if (!r.ok) b.failures++;
    if (r.oauth) {
      if (r.killAfterMs >= 0) b.daemonKilled = (b.daemonKilled ?? 0) + 1;
      b.rotations = (b.rotations ?? 0) + r.oauth.rotations;
      if (r.oauth.lostUnacknowledged) b.lostUnacknowledged = (b.lostUnacknowledged ?? 0) + 1;
      b.byKill ??= {};
      b.byKill[r.oauth.kill] = (b.byKill[r.oauth.kill] ?? 0) + 1;
    }
  }
  return {
    trials: results.length,
    byOp,
    failures: results.filter((r) => !r.ok),
    durationMs: Date.now() - started,
  };
}

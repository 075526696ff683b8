/**
 * Crash safety (SPEC §3): a few SIGKILL trials per `npm test` run; `npm run crash-test` runs ≥ 200.
 * See harness.ts (vault writers, daemon kills) and oauth-trial.ts (OAuth token write-back) for what is
 * checked.
 */
import { describe, expect, it } from 'vitest';
import { runCrashTrials } from './harness.js';

const TRIALS = Number(process.env.CRASH_TRIALS ?? '6');
const OAUTH_TRIALS = Number(process.env.CRASH_OAUTH_TRIALS ?? '2');

describe('crash safety: SIGKILL during writes', () => {
  it(
    `${TRIALS} random kill trials leave a loadable vault with every acknowledged write`,
    { timeout: 60_000 + TRIALS * 5000 },
    async () => {
      const summary = await runCrashTrials(TRIALS, {
        ops: ['create', 'rotate', 'rotate-master', 'daemon-kill'],
      });
      expect(summary.failures).toEqual([]);
      expect(summary.trials).toBe(TRIALS);
    },
  );

  it(
    'oauth write-back: aivaultd killed around a rotating refresh keeps every token it used, and recovers',
    { timeout: 60_000 + OAUTH_TRIALS * 30_000 },
    async () => {
      // The two aimed kill points in turn (`npm run crash-test` adds random instants): at the first use of a
      // new access token (it must already be durable), and just after the endpoint issued a token (the
      // receive → fsync window, where only an unacknowledged rotation may be lost).
      const summary = await runCrashTrials(OAUTH_TRIALS, {
        ops: ['oauth-writeback'],
        oauthKills: ['at-use', 'after-token', 'random'],
      });
      expect(summary.failures).toEqual([]);
      const stats = summary.byOp['oauth-writeback']!;
      expect(stats.trials).toBe(OAUTH_TRIALS);
      expect(stats.rotations).toBeGreaterThanOrEqual(OAUTH_TRIALS); // the endpoint really rotated tokens
      expect(stats.daemonKilled).toBeGreaterThanOrEqual(1); // and at least the at-use kill happened
    },
  );
});

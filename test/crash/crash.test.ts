/**
 * Crash safety (SPEC §3): a few SIGKILL trials per `npm test` run; `npm run crash-test` runs ≥ 200.
 * See harness.ts for what is checked.
 */
import { describe, expect, it } from 'vitest';
import { runCrashTrials } from './harness.js';

const TRIALS = Number(process.env.CRASH_TRIALS ?? '6');

describe('crash safety: SIGKILL during writes', () => {
  it(
    `${TRIALS} random kill trials leave a loadable vault with every acknowledged write`,
    { timeout: 60_000 + TRIALS * 5000 },
    async () => {
      const summary = await runCrashTrials(TRIALS);
      expect(summary.failures).toEqual([]);
      expect(summary.trials).toBe(TRIALS);
    },
  );
});

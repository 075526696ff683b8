/**
 * Giving a quiet thread's heap back (src/core/threads/idle-release.ts): when the decision fires, and that
 * the collection it runs really frees garbage and, after the quiet period, shrinks a grown V8 new space
 * (real V8, this process, `--expose-gc` set the way the daemon sets it); without the flag nothing runs.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import {
  IDLE_SAMPLES,
  IDLE_UTILIZATION,
  INITIAL_IDLE_STATE,
  idleStep,
  releaseIdleMemory,
  type IdleState,
} from '../../../src/core/threads/idle-release.js';

const BUSY = 0.4;
const QUIET = IDLE_UTILIZATION / 4;

/** Feed samples from INITIAL_IDLE_STATE; the indexes of the samples that released. */
function releasesOf(samples: readonly number[]): number[] {
  let s: IdleState = INITIAL_IDLE_STATE;
  const out: number[] = [];
  samples.forEach((u, i) => {
    const step = idleStep(s, u);
    s = step.state;
    if (step.release) out.push(i);
  });
  return out;
}

describe('idleStep', () => {
  it('releases once, after IDLE_SAMPLES quiet samples that follow a busy one', () => {
    const samples = [BUSY, BUSY, ...Array<number>(IDLE_SAMPLES * 3).fill(QUIET)];
    expect(releasesOf(samples)).toEqual([1 + IDLE_SAMPLES]);
  });

  it('never releases a thread that was never busy (timers only, or single calls spread out)', () => {
    expect(releasesOf(Array<number>(IDLE_SAMPLES * 4).fill(QUIET))).toEqual([]);
    expect(releasesOf(Array<number>(IDLE_SAMPLES * 4).fill(IDLE_UTILIZATION))).toEqual([]);
  });

  it('a busy sample inside the quiet run starts the count again', () => {
    const quiet = (n: number): number[] => Array<number>(n).fill(QUIET);
    const samples = [BUSY, ...quiet(IDLE_SAMPLES - 1), BUSY, ...quiet(IDLE_SAMPLES)];
    expect(releasesOf(samples)).toEqual([IDLE_SAMPLES + IDLE_SAMPLES]);
  });

  it('each burst followed by quiet releases once', () => {
    const burst = [BUSY, ...Array<number>(IDLE_SAMPLES + 2).fill(QUIET)];
    expect(releasesOf([...burst, ...burst])).toEqual([IDLE_SAMPLES, burst.length + IDLE_SAMPLES]);
  });
});

describe('releaseIdleMemory', () => {
  it('without --expose-gc collects nothing and says so', () => {
    // A fresh process: this one sets the flag below, and V8 flags are per process.
    const r = spawnSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '-e',
        "import('./src/core/threads/idle-release.ts').then((m) => process.stdout.write(String(m.releaseIdleMemory())))",
      ],
      { cwd: resolve(import.meta.dirname, '..', '..', '..'), encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('false');
  });

  it('with the flag, after more than 5 s of quiet, shrinks a new space grown under load', async () => {
    setFlagsFromString('--expose-gc');
    const newSpace = (): number =>
      getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
    // Many scavenges with survivors make V8 grow the new space (as calls in flight do in the daemon).
    let keep: object[] = [];
    for (let i = 0; i < 400_000; i++) {
      keep.push({ i, s: `x${i}`, a: [i, i + 1] });
      if (keep.length > 20_000) keep = keep.slice(10_000);
    }
    keep = [];
    const grown = newSpace();
    // The quiet period the sampler waits for (V8 shrinks only at a low allocation rate over 5 s).
    await new Promise((r) => setTimeout(r, IDLE_SAMPLES * 1000));
    expect(releaseIdleMemory()).toBe(true);
    expect(newSpace()).toBeLessThan(grown / 4);
    expect(keep).toEqual([]);
  }, 20_000);
});

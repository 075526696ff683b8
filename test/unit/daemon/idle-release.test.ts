/**
 * Giving a quiet thread's heap back (src/core/threads/idle-release.ts): when the decision fires, and that
 * it runs a real full collection (V8's own GC events, this process, `--expose-gc` set the way the daemon
 * sets it); without the flag nothing runs.
 */
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { constants, PerformanceObserver } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
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

  it('with the flag, runs one full (mark-compact) collection in this thread', async () => {
    setFlagsFromString('--expose-gc');
    // What the collection then gives back is V8's decision (a grown new space shrinks only at a low
    // allocation rate over the last 5 s, and not always: bench/PROFILE.md); that it runs is ours.
    const kinds: number[] = [];
    const observer = new PerformanceObserver((list) => {
      // A 'gc' entry's detail holds the collection's kind (@types/node types `detail` on subclasses only).
      for (const e of list.getEntries())
        kinds.push((e as unknown as { detail: { kind: number } }).detail.kind);
    });
    observer.observe({ entryTypes: ['gc'] });
    try {
      expect(releaseIdleMemory()).toBe(true);
      await expect.poll(() => kinds.includes(constants.NODE_PERFORMANCE_GC_MAJOR)).toBe(true);
    } finally {
      observer.disconnect();
    }
  });
});

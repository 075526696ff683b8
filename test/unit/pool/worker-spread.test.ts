// The active set of request workers (src/pool/worker-spread.ts): as few workers as keep up.
import { describe, expect, it } from 'vitest';
import {
  INITIAL_SPREAD,
  nextSpread,
  SPREAD_RULES,
  type SpreadSample,
  type SpreadState,
} from '../../../src/pool/worker-spread.js';

const busyWithRoom: SpreadSample = { activeElu: 0.95, idleCores: 1.2, otherCores: 0.1 };
const busySaturatedByOthers: SpreadSample = { activeElu: 0.95, idleCores: 0.05, otherCores: 0.8 };
const light: SpreadSample = { activeElu: 0.1, idleCores: 1.5, otherCores: 0.1 };

function run(state: SpreadState, total: number, samples: readonly SpreadSample[]): SpreadState {
  return samples.reduce((s, x) => nextSpread(s, total, x), state);
}
const times = (n: number, s: SpreadSample): SpreadSample[] => Array.from({ length: n }, () => s);

describe('request-worker active set', () => {
  it('starts with one worker', () => {
    expect(INITIAL_SPREAD.active).toBe(1);
  });

  it('grows only after enough busy windows with an idle core, one worker at a time, never past the pool', () => {
    const one = run(INITIAL_SPREAD, 4, times(SPREAD_RULES.growWindows - 1, busyWithRoom));
    expect(one.active).toBe(1);
    const two = nextSpread(one, 4, busyWithRoom);
    expect(two.active).toBe(2);
    expect(run(two, 4, times(SPREAD_RULES.growWindows, busyWithRoom)).active).toBe(3);
    expect(run(INITIAL_SPREAD, 2, times(20, busyWithRoom)).active).toBe(2);
  });

  it('does not grow on a machine without an idle core, however busy its workers are', () => {
    expect(run(INITIAL_SPREAD, 4, times(20, busySaturatedByOthers)).active).toBe(1);
    expect(run(INITIAL_SPREAD, 4, times(20, { ...busyWithRoom, idleCores: 0.5 })).active).toBe(1);
  });

  it('needs the windows in a row: one that does not qualify starts the count again', () => {
    const r = SPREAD_RULES.growWindows;
    const samples = [...times(r - 1, busyWithRoom), light, ...times(r - 1, busyWithRoom)];
    expect(run(INITIAL_SPREAD, 4, samples).active).toBe(1);
  });

  it('shrinks when the load fits in one worker fewer, not when it would overload them', () => {
    const three: SpreadState = { active: 3, growStreak: 0, shrinkStreak: 0 };
    expect(run(three, 4, times(SPREAD_RULES.shrinkWindows - 1, light)).active).toBe(3);
    expect(run(three, 4, times(SPREAD_RULES.shrinkWindows, light)).active).toBe(2);
    // 0.5 on 3 workers would be 0.75 on 2: above fitElu, so it stays.
    expect(run(three, 4, times(20, { activeElu: 0.5, idleCores: 1, otherCores: 0 })).active).toBe(3);
    expect(run(three, 4, times(100, light)).active).toBe(1);
  });

  it('shrinks when other processes saturate the cores, not when this daemon does', () => {
    const two: SpreadState = { active: 2, growStreak: 0, shrinkStreak: 0 };
    expect(
      run(two, 2, times(SPREAD_RULES.shrinkWindows, { ...busySaturatedByOthers, activeElu: 0.8 })).active,
    ).toBe(1);
    const ownSaturation: SpreadSample = { activeElu: 0.95, idleCores: 0.02, otherCores: 0.1 };
    expect(run(two, 2, times(20, ownSaturation)).active).toBe(2);
  });

  it('stays within 1..live workers when workers die or the state is out of range', () => {
    expect(nextSpread({ active: 4, growStreak: 0, shrinkStreak: 0 }, 2, light).active).toBeLessThanOrEqual(2);
    expect(nextSpread({ active: 0, growStreak: 0, shrinkStreak: 0 }, 2, light).active).toBe(1);
    expect(nextSpread(INITIAL_SPREAD, 0, busyWithRoom).active).toBe(1);
    for (let total = 1; total <= 5; total++) {
      let s = INITIAL_SPREAD;
      for (let i = 0; i < 200; i++) {
        const x = i % 7 < 4 ? busyWithRoom : i % 7 === 4 ? busySaturatedByOthers : light;
        s = nextSpread(s, total, x);
        expect(s.active).toBeGreaterThanOrEqual(1);
        expect(s.active).toBeLessThanOrEqual(total);
      }
    }
  });
});

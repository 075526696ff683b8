/**
 * The reflected-secret matchers of a thread (src/request-worker/pipeline/scrubber-cache.ts): reused for
 * equal secrets, never handed out for other values, names or kinds (a stale matcher would let a rotated
 * key's new value through, or name the wrong secret), and, since they hold the values, dropped when the
 * vault generation moves (rotate, delete, lock) and five minutes after their last use.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Generation } from '../../../src/core/threads/generation.js';
import {
  bindScrubberCache,
  dropScrubbers,
  SCRUBBER_TTL_MS,
  scrubberFor,
} from '../../../src/request-worker/pipeline/scrubber-cache.js';
import type { ScrubSecret } from '../../../src/request-worker/pipeline/scrub.js';

const OLD = 'sk-old-0123456789abcdef';
const NEW = 'sk-new-fedcba9876543210';
const key = (value = OLD, name = 'OPENAI_API_KEY'): ScrubSecret[] => [{ name, value }];

beforeEach(() => dropScrubbers());
afterEach(() => {
  dropScrubbers();
  vi.useRealTimers();
});

describe('scrubberFor', () => {
  it('reuses the matcher for equal secrets in a new array, also behind another set', () => {
    const a = scrubberFor(key());
    expect(scrubberFor([{ name: 'OPENAI_API_KEY', value: `sk-old-${'0123456789abcdef'}` }])).toBe(a);
    scrubberFor(key(NEW));
    expect(scrubberFor(key())).toBe(a);
  });

  it('a rotated value gets a matcher for the new value, not the previous call’s', () => {
    scrubberFor(key());
    const next = scrubberFor(key(NEW));
    const out = next.scrubText(`{"echo":"${NEW}"}`);
    expect(out).not.toContain(NEW);
    expect(out).toContain('OPENAI_API_KEY');
  });

  it('a changed name or kind is a different matcher', () => {
    const byName = scrubberFor(key(OLD, 'A_KEY'));
    const renamed = scrubberFor(key(OLD, 'B_KEY'));
    expect(renamed).not.toBe(byName);
    expect(renamed.scrubText(OLD)).toContain('B_KEY');
    expect(scrubberFor([{ name: 'B_KEY', value: OLD, kind: 'basic' }])).not.toBe(renamed);
  });

  it('more or fewer secrets is a different matcher, and an earlier set still scrubs its own values', () => {
    const one = scrubberFor(key(OLD, 'K'));
    const two = scrubberFor([...key(OLD, 'K'), ...key(NEW, 'J')]);
    expect(two).not.toBe(one);
    expect(two.scrubText(`${OLD} ${NEW}`)).not.toMatch(/sk-(old|new)/);
    const again = scrubberFor(key(OLD, 'K'));
    expect(again.scrubText(`${OLD} ${NEW}`)).toContain(NEW);
    expect(again.scrubText(OLD)).not.toContain(OLD);
  });

  it('a vault generation bump (rotate, delete, lock) drops every matcher at the next call', () => {
    const generation = new Generation();
    bindScrubberCache(generation);
    const a = scrubberFor(key());
    const b = scrubberFor(key(NEW));
    expect(scrubberFor(key())).toBe(a);
    generation.bump();
    expect(scrubberFor(key())).not.toBe(a); // the previous call's set
    expect(scrubberFor(key(NEW))).not.toBe(b); // and the rest of the cache
  });

  it('a matcher unused for five minutes is dropped by the timer, one in use is kept', () => {
    vi.useFakeTimers();
    const idle = scrubberFor(key(OLD, 'IDLE'));
    const busy = scrubberFor(key(NEW, 'BUSY'));
    vi.advanceTimersByTime(SCRUBBER_TTL_MS - 1_000);
    expect(scrubberFor(key(NEW, 'BUSY'))).toBe(busy); // used again: its five minutes start over
    vi.advanceTimersByTime(2_000);
    expect(vi.getTimerCount()).toBe(1); // re-armed for the one still cached
    expect(scrubberFor(key(NEW, 'BUSY'))).toBe(busy);
    expect(scrubberFor(key(OLD, 'IDLE'))).not.toBe(idle);
  });

  it('an idle thread ends up holding no matcher and no timer', () => {
    vi.useFakeTimers();
    const a = scrubberFor(key());
    const b = scrubberFor(key(NEW));
    vi.advanceTimersByTime(SCRUBBER_TTL_MS + 1);
    expect(vi.getTimerCount()).toBe(0);
    expect(scrubberFor(key(NEW))).not.toBe(b); // not even the previous call's set is left
    expect(scrubberFor(key())).not.toBe(a);
  });
});

/**
 * scrubberFor: a thread reuses the previous call's matcher when its secrets are the same, and never
 * hands out a matcher built for other values, names or kinds (a stale matcher would let a rotated
 * key's new value through, or name the wrong secret in the replacement).
 */
import { describe, expect, it } from 'vitest';
import { scrubberFor } from '../../../src/request-worker/pipeline/scrub-call.js';
import type { ScrubSecret } from '../../../src/request-worker/pipeline/scrub.js';

const OLD = 'sk-old-0123456789abcdef';
const NEW = 'sk-new-fedcba9876543210';

describe('scrubberFor', () => {
  it('reuses the matcher for equal secrets in a new array', () => {
    const a = scrubberFor([{ name: 'OPENAI_API_KEY', value: OLD }]);
    const b = scrubberFor([{ name: 'OPENAI_API_KEY', value: `sk-old-${'0123456789abcdef'}` }]);
    expect(b).toBe(a);
  });

  it('a rotated value gets a matcher for the new value, not the previous call’s', () => {
    scrubberFor([{ name: 'OPENAI_API_KEY', value: OLD }]);
    const next = scrubberFor([{ name: 'OPENAI_API_KEY', value: NEW }]);
    const out = next.scrubText(`{"echo":"${NEW}"}`);
    expect(out).not.toContain(NEW);
    expect(out).toContain('OPENAI_API_KEY');
  });

  it('a changed name or kind is a different matcher', () => {
    const byName = scrubberFor([{ name: 'A_KEY', value: OLD }]);
    const renamed = scrubberFor([{ name: 'B_KEY', value: OLD }]);
    expect(renamed).not.toBe(byName);
    expect(renamed.scrubText(OLD)).toContain('B_KEY');
    const basic: ScrubSecret[] = [{ name: 'B_KEY', value: OLD, kind: 'basic' }];
    expect(scrubberFor(basic)).not.toBe(renamed);
  });

  it('more or fewer secrets is a different matcher, and an earlier set still scrubs its own values', () => {
    const one = scrubberFor([{ name: 'K', value: OLD }]);
    const two = scrubberFor([
      { name: 'K', value: OLD },
      { name: 'J', value: NEW },
    ]);
    expect(two).not.toBe(one);
    expect(two.scrubText(`${OLD} ${NEW}`)).not.toMatch(/sk-(old|new)/);
    const again = scrubberFor([{ name: 'K', value: OLD }]);
    expect(again.scrubText(`${OLD} ${NEW}`)).toContain(NEW);
    expect(again.scrubText(OLD)).not.toContain(OLD);
  });
});

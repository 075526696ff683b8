/** The bench's "other work on this machine" count must not call a quiet machine busy over zombies. */
import { describe, expect, it } from 'vitest';
import { isZombie } from '../../../bench/support/machine.js';

describe('isZombie', () => {
  it('reads the state after the last parenthesis of /proc/<pid>/stat', () => {
    expect(isZombie('4035 (node) Z 1 4035 4035 0 -1 4194380 0 0')).toBe(true);
    expect(isZombie('4108 (node) S 4011 4108 4011 0 -1 4194304 0 0')).toBe(false);
    expect(isZombie('4108 (node) R 4011 4108 4011 0 -1 4194304 0 0')).toBe(false);
  });

  it('a comm with spaces and parentheses does not shift the state', () => {
    expect(isZombie('77 (a) Z (b)) S 1 77 77 0')).toBe(false);
    expect(isZombie('77 (a) S (b)) Z 1 77 77 0')).toBe(true);
  });

  it('a real process of this machine is not a zombie', async () => {
    const { readFileSync } = await import('node:fs');
    expect(isZombie(readFileSync(`/proc/${process.pid}/stat`, 'utf8'))).toBe(false);
  });
});

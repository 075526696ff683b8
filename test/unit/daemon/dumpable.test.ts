import { describe, expect, it } from 'vitest';
import { disableDumpable } from '../../../src/front/dumpable.js';

describe('disableDumpable', () => {
  it('reports a missing addon with the command that builds it (aivaultd then refuses to start)', () => {
    const r = disableDumpable('/nonexistent/dumpable.node');
    expect(r.ok).toBe(false);
    if (!r.ok && process.platform === 'linux') expect(r.reason).toContain('build-addon.sh dumpable');
  });
});

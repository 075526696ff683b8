/**
 * Test-only store lock staleness (Config.testing.storeLockStaleMs, set by startDaemon's `testing` option):
 * a `.vault.lock` left by a holder that stopped refreshing it is taken over once it is older than the
 * injected staleness instead of the 10 s default. No waiting: the dead holder's lock is back-dated.
 */
import { mkdirSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { lockStaleMs, useTestLockStaleness, withVaultLock } from '../../../src/stores/vault/store.js';
import { tmpDir } from '../../support/tmp-dir.js';

describe('store lock staleness from Config.testing', () => {
  it('a lock left 3 s ago is taken over at once with storeLockStaleMs 2000 (the default is 10 s)', async () => {
    const root = tmpDir('aivault-lock-stale-');
    const lock = join(root, '.vault.lock');
    mkdirSync(lock);
    const t = (Date.now() - 3_000) / 1000;
    utimesSync(lock, t, t);
    expect(lockStaleMs(root, 10_000)).toBe(10_000);
    useTestLockStaleness({ vaultDir: root, testing: { storeLockStaleMs: 2_000 } });
    expect(lockStaleMs(root, 10_000)).toBe(2_000);
    expect(lockStaleMs(join(root, 'other'), 10_000)).toBe(10_000);
    const started = Date.now();
    // With the default the dead holder's lock would be kept for 7 more seconds (this test's timeout is 5 s).
    expect(await withVaultLock(root, async () => 'ran')).toBe('ran');
    expect(Date.now() - started).toBeLessThan(1_000);
    // A config without `testing` (every production one) clears it again.
    useTestLockStaleness({ vaultDir: root });
    expect(lockStaleMs(root, 10_000)).toBe(10_000);
  });
});

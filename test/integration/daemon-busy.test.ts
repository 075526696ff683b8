// Pool saturation is capacity, not policy: every request worker at its concurrent-call limit answers
// `daemon_busy` (503), never `rate_limited` (a capability's per-minute limit).
import { describe, expect, it, onTestFinished } from 'vitest';
import { DaemonPool } from '../../src/pool/daemon-pool.js';
import { ERRORS } from '../../src/core/errors.js';
import { createDevVault } from '../support/dev-vault.js';
import { envelope } from './daemon-fixture.js';

describe('request pool at its concurrency limit', () => {
  it('refuses the call over the limit with daemon_busy', async () => {
    const dv = await createDevVault({ prefix: 'aivault-busy-' });
    onTestFinished(() => dv.close());
    const pool = new DaemonPool(dv.config, { workers: 1, concurrentTasksPerWorker: 1 });
    onTestFinished(() => pool.close(2000));
    // The first call holds the only slot (it never has to reach an upstream for that).
    const first = pool.startCall(
      { envelope: envelope('/held'), context: {}, stream: false },
      { onMessage: () => undefined },
    );
    onTestFinished(() => first.abort());
    let code: string | undefined;
    try {
      pool.startCall(
        { envelope: envelope('/over'), context: {}, stream: false },
        { onMessage: () => undefined },
      );
    } catch (err) {
      code = (err as { code?: string }).code;
    }
    expect(code).toBe('daemon_busy');
    expect(ERRORS.daemon_busy.http).toBe(503);
  });
});

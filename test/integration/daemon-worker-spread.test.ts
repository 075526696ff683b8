// Calls go to as few request workers as keep up (src/pool/worker-spread.ts): real workers, a real pool;
// only the load measurement is injected, so growth and shrinking can be driven on a 2-core test machine.
import { describe, expect, it, onTestFinished } from 'vitest';
import { DaemonPool } from '../../src/pool/daemon-pool.js';
import type { SpreadSample } from '../../src/pool/worker-spread.js';
import { createDevVault } from '../support/dev-vault.js';
import { envelope } from './daemon-fixture.js';

/** Wait for `cond`; with `pool`, one call is started every turn meanwhile (the set is judged under load). */
async function until(cond: () => boolean, pool?: DaemonPool, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    if (pool) await Promise.all(start(pool, 1));
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function poolWith(measure: () => SpreadSample | undefined): Promise<DaemonPool> {
  const dv = await createDevVault({ prefix: 'aivault-spread-' });
  onTestFinished(() => dv.close());
  const pool = new DaemonPool(dv.config, { workers: 3, workerSpread: { intervalMs: 15, measure } });
  onTestFinished(() => pool.close(2000));
  await until(() => pool.workerSpread().ready === 1);
  return pool;
}

/** Start n calls at once (synchronously); each promise settles when its call got its final message. */
function start(pool: DaemonPool, n: number): Promise<void>[] {
  const done: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    let resolve!: () => void;
    done.push(new Promise<void>((r) => (resolve = r)));
    pool.startCall(
      { envelope: envelope('/x'), context: {}, stream: false },
      {
        onMessage: (msg) => {
          if (msg.t === 'full' || msg.t === 'end' || msg.t === 'error') resolve();
        },
      },
    );
  }
  return done;
}

describe('request-worker active set', () => {
  it('packs calls onto the first worker while it keeps up, spreads them once it grew, packs again after', async () => {
    let sample: SpreadSample = { activeElu: 0.1, idleCores: 1.5, otherCores: 0 };
    const pool = await poolWith(() => sample);
    expect(pool.workerSpread().active).toBe(1);
    // Only the first worker was started; the others start when the set grows.
    expect(pool.piscina.threads.length).toBe(1);
    start(pool, 6);
    expect(pool.workerSpread().calls).toEqual([6]);
    await until(() => pool.workerSpread().calls.every((n) => n === 0));

    sample = { activeElu: 0.97, idleCores: 1.5, otherCores: 0 };
    await until(() => pool.workerSpread().active === 3, pool);
    await until(() => pool.workerSpread().ready === 3);
    expect(pool.piscina.threads.length).toBe(3);
    start(pool, 6);
    expect(pool.workerSpread().calls).toEqual([2, 2, 2]);
    await until(() => pool.workerSpread().calls.every((n) => n === 0));

    sample = { activeElu: 0.05, idleCores: 1.5, otherCores: 0 };
    await until(() => pool.workerSpread().active === 1, pool);
    start(pool, 4);
    expect(pool.workerSpread().calls).toEqual([4, 0, 0]); // the started workers stay
  });

  it('never grows on a machine whose cores other processes keep busy', async () => {
    let windows = 0;
    const pool = await poolWith(() => {
      windows++;
      return { activeElu: 0.99, idleCores: 0.02, otherCores: 1.4 };
    });
    await until(() => windows >= 20, pool);
    expect(pool.workerSpread().active).toBe(1);
    expect(pool.piscina.threads.length).toBe(1);
  });

  it('a call over the active workers’ limit goes to another worker, started for it if need be (never refused for the spread)', async () => {
    const dv = await createDevVault({ prefix: 'aivault-spread-' });
    onTestFinished(() => dv.close());
    const pool = new DaemonPool(dv.config, {
      workers: 2,
      concurrentTasksPerWorker: 2,
      workerSpread: { measure: () => ({ activeElu: 0, idleCores: 2, otherCores: 0 }) },
    });
    onTestFinished(() => pool.close(2000));
    // The third call finds the only started worker full: the second worker starts for it.
    start(pool, 3);
    expect(pool.workerSpread()).toMatchObject({ active: 1, calls: [2, 1] });
    let code: string | undefined;
    start(pool, 1);
    try {
      start(pool, 1);
    } catch (err) {
      code = (err as { code?: string }).code;
    }
    expect(code).toBe('daemon_busy');
  });

  it('a worker that dies is replaced, and the replacement takes the calls', async () => {
    const pool = await poolWith(() => ({ activeElu: 0.1, idleCores: 1.5, otherCores: 0 }));
    await Promise.all(start(pool, 1));
    const first = pool.piscina.threads[0];
    await first?.terminate();
    await until(() => pool.piscina.threads[0] !== first && pool.workerSpread().ready === 1);
    const calls = start(pool, 2);
    expect(pool.workerSpread().calls).toEqual([2]);
    await Promise.all(calls);
  });
});

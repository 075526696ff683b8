// Worker heap limits: parsed from AIVAULTD_WORKER_HEAP_MB / _YOUNG_MB, and actually applied to the pool's real
// request workers and crypto worker.
import { describe, expect, it, onTestFinished } from 'vitest';
import type { Worker } from 'node:worker_threads';
import { DaemonPool } from '../../../src/pool/daemon-pool.js';
import { parseArgs } from '../../../src/front/main.js';
import { cryptoWorkerResourceLimits, workerResourceLimits } from '../../../src/pool/worker-limits.js';
import { createDevVault } from '../../support/dev-vault.js';

describe('workerResourceLimits', () => {
  it('defaults to a 96 MB old space and a 16 MB young space, and honours the two variables', () => {
    const def = { maxOldGenerationSizeMb: 96, maxYoungGenerationSizeMb: 16 };
    expect(workerResourceLimits({})).toEqual(def);
    expect(workerResourceLimits({ AIVAULTD_WORKER_HEAP_MB: '', AIVAULTD_WORKER_YOUNG_MB: '' })).toEqual(def);
    expect(workerResourceLimits({ AIVAULTD_WORKER_HEAP_MB: '200', AIVAULTD_WORKER_YOUNG_MB: '24' })).toEqual({
      maxOldGenerationSizeMb: 200,
      maxYoungGenerationSizeMb: 24,
    });
  });

  it('gives the crypto worker a 2 MB nursery (less only when the variable asks for less), the same old space', () => {
    expect(cryptoWorkerResourceLimits({})).toEqual({
      maxOldGenerationSizeMb: 96,
      maxYoungGenerationSizeMb: 2,
    });
    expect(
      cryptoWorkerResourceLimits({ AIVAULTD_WORKER_HEAP_MB: '200', AIVAULTD_WORKER_YOUNG_MB: '16' }),
    ).toEqual({
      maxOldGenerationSizeMb: 200,
      maxYoungGenerationSizeMb: 2,
    });
    expect(() => cryptoWorkerResourceLimits({ AIVAULTD_WORKER_YOUNG_MB: '1' })).toThrow(
      expect.objectContaining({ code: 'usage' }),
    );
  });

  it('refuses nonsense as a usage error naming the variable', () => {
    for (const [name, bads] of [
      ['AIVAULTD_WORKER_HEAP_MB', ['abc', '12.5', '-1', '8']],
      ['AIVAULTD_WORKER_YOUNG_MB', ['abc', '1.5', '1']],
    ] as const) {
      for (const bad of bads) {
        expect(() => workerResourceLimits({ [name]: bad })).toThrow(
          expect.objectContaining({ code: 'usage', message: expect.stringContaining(name) }),
        );
      }
    }
  });

  it('aivaultd refuses a bad value at start (usage), before any worker exists', () => {
    const prev = process.env.AIVAULTD_WORKER_HEAP_MB;
    process.env.AIVAULTD_WORKER_HEAP_MB = 'lots';
    onTestFinished(() => {
      if (prev === undefined) delete process.env.AIVAULTD_WORKER_HEAP_MB;
      else process.env.AIVAULTD_WORKER_HEAP_MB = prev;
    });
    expect(() => parseArgs([])).toThrow(expect.objectContaining({ code: 'usage' }));
  });
});

describe('DaemonPool workers run under the heap limit', () => {
  it('request workers and the crypto worker report maxOldGenerationSizeMb from the environment and their nurseries', async () => {
    const prev = process.env.AIVAULTD_WORKER_HEAP_MB;
    process.env.AIVAULTD_WORKER_HEAP_MB = '80';
    onTestFinished(() => {
      if (prev === undefined) delete process.env.AIVAULTD_WORKER_HEAP_MB;
      else process.env.AIVAULTD_WORKER_HEAP_MB = prev;
    });
    const dv = await createDevVault({ prefix: 'aivault-heap-' });
    onTestFinished(() => dv.close());
    // A busy worker and an idle core: the second worker starts too (src/pool/worker-spread.ts).
    const pool = new DaemonPool(dv.config, {
      workers: 2,
      workerSpread: { intervalMs: 10, measure: () => ({ activeElu: 1, idleCores: 2, otherCores: 0 }) },
    });
    onTestFinished(() => pool.close(2000));
    // Private fields, read on purpose: the limits are a property of the real Worker objects.
    const inner = pool as unknown as { piscina: { threads: Worker[] }; crypto: Worker };
    await expect
      .poll(() => {
        // The set is judged while calls start.
        pool.startCall(
          {
            envelope: { capability: 'echo/api', request: { method: 'GET', path: '/' } },
            context: {},
            stream: false,
          },
          { onMessage: () => undefined },
        );
        return inner.piscina.threads.length;
      })
      .toBe(2);
    for (const w of [...inner.piscina.threads, inner.crypto]) {
      await expect.poll(() => w.resourceLimits?.maxOldGenerationSizeMb).toBe(80);
      expect(w.resourceLimits?.maxYoungGenerationSizeMb).toBe(w === inner.crypto ? 2 : 16);
    }
  });
});

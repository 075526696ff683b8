// What the active set is decided on (src/pool/worker-load.ts), measured on real worker threads.
import { Worker } from 'node:worker_threads';
import { describe, expect, it, onTestFinished } from 'vitest';
import { createLoadMeter } from '../../../src/pool/worker-load.js';

function thread(code: string): Worker {
  const w = new Worker(code, { eval: true });
  onTestFinished(async () => {
    await w.terminate();
  });
  return w;
}
const online = (w: Worker): Promise<void> => new Promise((r) => w.once('online', () => r()));

describe('worker load meter', () => {
  it('reads a spinning worker as busy and an idle one as idle; cores are never negative', async () => {
    // The busy thread spins in 5 ms slices so its event loop still turns.
    const busy = thread(
      `const spin = () => { const e = Date.now() + 5; while (Date.now() < e); setImmediate(spin); }; spin();`,
    );
    const idle = thread(`setInterval(() => {}, 1000);`);
    await Promise.all([online(busy), online(idle)]);
    const meter = createLoadMeter();
    expect(meter([busy])).toBeUndefined(); // the first window only sets each worker's baseline
    const idleMeter = createLoadMeter();
    idleMeter([idle]);
    await new Promise((r) => setTimeout(r, 300));
    const b = meter([busy]);
    const i = idleMeter([idle]);
    expect(b?.activeElu).toBeGreaterThan(0.8);
    expect(i?.activeElu).toBeLessThan(0.2);
    for (const x of [b, i]) {
      expect(x?.idleCores).toBeGreaterThanOrEqual(0);
      expect(x?.otherCores).toBeGreaterThanOrEqual(0);
    }
  });
});

/**
 * The shared metrics buffer (src/core/threads/metrics-buffer.ts): writers in separate regions (as request
 * workers in separate threads) sum up in the reader; capability and series tables stay bounded and
 * fall back to `_other` rows when full; histograms are cumulative; a dead worker's gauges reset while
 * its counters stay. A real worker thread writes into the same buffer to show Atomics across threads.
 */
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import {
  BUCKETS_MS,
  CAP_NONE,
  CAP_OTHER,
  CAP_SLOTS,
  capabilityKey,
  createMetricsBuffer,
  FIRST_WORKER_REGION,
  MetricsReader,
  MetricsWriter,
  REGION_MAIN,
} from '../../../src/core/threads/metrics-buffer.js';

describe('metrics buffer', () => {
  it('sums calls from every region by capability, transport and outcome; refusals by code', () => {
    const buf = createMetricsBuffer(2);
    const a = new MetricsWriter(buf, FIRST_WORKER_REGION);
    const b = new MetricsWriter(buf, FIRST_WORKER_REGION + 1);
    for (let i = 0; i < 5; i++) a.call('socket', a.capability('openai/models'), 'ok');
    for (let i = 0; i < 7; i++) b.call('socket', b.capability('openai/models'), 'ok');
    b.call('proxy', b.capability('openai/models'), 'rate_limited');
    b.call('proxy', b.capability(undefined), 'upstream_unreachable');
    new MetricsWriter(buf, REGION_MAIN).refusal('passthrough', 'token_invalid');
    const r = new MetricsReader(buf);
    const slot = a.capability('openai/models');
    expect(b.capability('openai/models')).toBe(slot); // one slot per id for every thread
    expect(r.capabilitySlots().get(slot)).toBe(capabilityKey('openai/models'));
    const calls = r.calls();
    expect(calls).toContainEqual({ cap: slot, transport: 'socket', outcome: 'ok', value: 12 });
    expect(calls).toContainEqual({ cap: slot, transport: 'proxy', outcome: 'rate_limited', value: 1 });
    expect(calls).toContainEqual({
      cap: CAP_NONE,
      transport: 'proxy',
      outcome: 'upstream_unreachable',
      value: 1,
    });
    expect(calls).toContainEqual({
      cap: CAP_NONE,
      transport: 'passthrough',
      outcome: 'token_invalid',
      value: 1,
    });
    // upstream_unreachable is a failure, not a refusal.
    expect(r.refusals()).toEqual([
      { transport: 'proxy', code: 'rate_limited', value: 1 },
      { transport: 'passthrough', code: 'token_invalid', value: 1 },
    ]);
  });

  it('a full capability table counts into _other instead of growing', () => {
    const buf = createMetricsBuffer(1);
    const w = new MetricsWriter(buf, FIRST_WORKER_REGION);
    for (let i = 0; i < CAP_SLOTS; i++) expect(w.capability(`cap/${i}`)).toBeLessThan(CAP_SLOTS);
    expect(w.capability('cap/one-too-many')).toBe(CAP_OTHER);
    w.call('socket', w.capability('cap/one-too-many'), 'ok');
    const r = new MetricsReader(buf);
    expect(r.capabilitySlots().size).toBe(CAP_SLOTS);
    expect(r.calls()).toContainEqual({ cap: CAP_OTHER, transport: 'socket', outcome: 'ok', value: 1 });
  });

  it('histograms are cumulative with a +Inf bucket, a count and a sum', () => {
    const buf = createMetricsBuffer(1);
    const w = new MetricsWriter(buf, FIRST_WORKER_REGION);
    w.observe('total', 'proxy', 0.2);
    w.observe('total', 'proxy', 7);
    w.observe('total', 'proxy', 999_999);
    w.observeConnect(12);
    const h = new MetricsReader(buf).stage('total', 'proxy');
    expect(h.count).toBe(3);
    expect(h.cumulative).toHaveLength(BUCKETS_MS.length + 1);
    expect(h.cumulative[0]).toBe(1); // ≤ 0.5 ms
    expect(h.cumulative[BUCKETS_MS.indexOf(10)]).toBe(2);
    expect(h.cumulative[BUCKETS_MS.length - 1]).toBe(2); // ≤ 60 s
    expect(h.cumulative.at(-1)).toBe(3);
    expect(h.sumMs).toBeCloseTo(0.2 + 7 + 999_999, 3);
    expect(new MetricsReader(buf).stage('total', 'socket').count).toBe(0);
    expect(new MetricsReader(buf).connect().count).toBe(1);
  });

  it("a dead worker's gauges reset; its counters stay", () => {
    const buf = createMetricsBuffer(1);
    const w = new MetricsWriter(buf, FIRST_WORKER_REGION);
    w.inFlight('proxy', 1);
    w.openStreams('proxy', 1);
    w.call('proxy', w.capability('x/y'), 'ok');
    w.scrubbed('proxy', 3);
    const r = new MetricsReader(buf);
    expect(r.inFlight('proxy')).toBe(1);
    r.resetGauges(FIRST_WORKER_REGION);
    expect(r.inFlight('proxy')).toBe(0);
    expect(r.openStreams('proxy')).toBe(0);
    expect(r.calls()[0]?.value).toBe(1);
    expect(r.scrubbed('proxy')).toEqual({ responses: 1, values: 3 });
  });

  it('refuses a buffer of the wrong size and a region out of range', () => {
    expect(() => new MetricsReader(new SharedArrayBuffer(64))).toThrow(TypeError);
    expect(() => new MetricsWriter(createMetricsBuffer(1), FIRST_WORKER_REGION + 1)).toThrow(RangeError);
  });

  it('counts written by other threads are exact (Atomics, no message)', async () => {
    const buf = createMetricsBuffer(2);
    const n = 20_000;
    // Two threads and this one add into the same series slot at once: nothing is lost. The workers run
    // the built module (dist/, made by `npm run build`), as the daemon's request workers do.
    const url = new URL('../../../dist/src/core/threads/metrics-buffer.js', import.meta.url).href;
    const code = `
      import { workerData, parentPort } from 'node:worker_threads';
      const { MetricsWriter } = await import(${JSON.stringify(url)});
      const w = new MetricsWriter(workerData.buf, workerData.region);
      for (let i = 0; i < workerData.n; i++) w.call('ws', w.capability('echo/api'), 'ok');
      parentPort.postMessage('done');
    `;
    const run = (region: number): Promise<void> =>
      new Promise((resolve, reject) => {
        const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`), {
          workerData: { buf, region, n },
        });
        worker.once('message', () => void worker.terminate().then(() => resolve()));
        worker.once('error', reject);
      });
    const main = new MetricsWriter(buf, REGION_MAIN);
    await Promise.all([
      run(FIRST_WORKER_REGION),
      run(FIRST_WORKER_REGION + 1),
      Promise.resolve().then(() => {
        for (let i = 0; i < n; i++) main.call('ws', main.capability('echo/api'), 'ok');
      }),
    ]);
    const calls = new MetricsReader(buf).calls();
    expect(calls).toEqual([
      { cap: main.capability('echo/api'), transport: 'ws', outcome: 'ok', value: 3 * n },
    ]);
  });
});

/**
 * The per-thread sampler (src/core/threads/thread-sampler.ts) measures event-loop delay only while
 * /metrics is being scraped: an unscraped daemon runs no 10 ms delay timer in any thread (idle wake-ups),
 * and once the main thread records a scrape, a worker's next samples report a blocked loop's delay.
 * A real worker thread samples into the shared buffer, as the daemon's threads do.
 */
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createMetricsBuffer,
  FIRST_WORKER_REGION,
  MetricsReader,
  MetricsWriter,
  REGION_MAIN,
} from '../../../src/core/threads/metrics-buffer.js';

let worker: Worker | undefined;
afterEach(async () => {
  await worker?.terminate();
  worker = undefined;
});

const BOOT = fileURLToPath(new URL('../../../src/pool/tsx-boot.mjs', import.meta.url));
const SAMPLING = new URL('./fixtures/sampling-worker.ts', import.meta.url).href;

/** A worker thread running the real sampler on `buf`'s first worker region, its loop blocked 40 ms per 100 ms. */
function startSamplingWorker(buf: SharedArrayBuffer): void {
  worker = new Worker(BOOT, { workerData: { __aivaultWorker: SAMPLING, buf, region: FIRST_WORKER_REGION } });
}

describe('thread sampler', () => {
  it('measures event-loop delay only while /metrics is scraped', async () => {
    const buf = createMetricsBuffer(1);
    const reader = new MetricsReader(buf);
    startSamplingWorker(buf);
    const delay = (): number => reader.thread(FIRST_WORKER_REGION).eldMaxUs;
    const sampled = (): number => reader.thread(FIRST_WORKER_REGION).sampledAtMs;

    // Never scraped: the worker samples (utilisation, heap) but measures no delay, blocked or not.
    await expect.poll(sampled, { timeout: 10_000 }).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 600));
    expect(reader.thread(FIRST_WORKER_REGION).eluPpm).toBeGreaterThan(100_000);
    expect(delay()).toBe(0);

    // The main thread records a scrape: the worker's next samples report its ~40 ms stalls.
    new MetricsWriter(buf, REGION_MAIN).setThread('scrapedAtMs', Date.now());
    await expect.poll(delay, { timeout: 10_000 }).toBeGreaterThan(20_000);
  }, 30_000);
});

/**
 * GET /metrics (main thread): the Prometheus text of the shared metrics buffer
 * (src/core/threads/metrics-buffer.ts), made at scrape time only: nothing here runs per call. Labels are
 * catalog capability ids, transports, stable error codes and thread names — never a secret, a token, a
 * path or caller text. README.md "Metrics" lists every metric. The exposition itself (prom-client) is
 * ./metrics-exposition.ts, loaded on the first scrape.
 */
import type { BrokerSnapshot } from '../core/broker/types.js';
import { MetricsWriter, REGION_MAIN } from '../core/threads/metrics-buffer.js';
import { startThreadSampler } from '../core/threads/thread-sampler.js';
import type { Exposition } from './metrics-exposition.js';

export interface MetricsSources {
  /** The pool's metrics buffer. */
  readonly buffer: SharedArrayBuffer;
  /** The pool's rate-limit table (read only). */
  readonly rateLimit: SharedArrayBuffer;
  /** The catalog (capability ids for labels, rate-limit policies). */
  snapshot(): Promise<BrokerSnapshot>;
  /** Request workers taking new calls now (src/pool/worker-spread.ts). */
  activeWorkers?(): number;
}

export interface DaemonMetrics {
  /** The main thread's own counters (refusals at the HTTP listener). */
  readonly writer: MetricsWriter;
  readonly contentType: string;
  /** The whole exposition, Prometheus text format. */
  scrape(): Promise<string>;
  close(): void;
}

/** Prometheus text format 0.0.4 (prom-client's Registry.PROMETHEUS_CONTENT_TYPE; a test holds them equal). */
export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

export function createDaemonMetrics(src: MetricsSources): DaemonMetrics {
  const writer = new MetricsWriter(src.buffer, REGION_MAIN);
  const stopSampler = startThreadSampler(writer);
  let exposition: Promise<Exposition> | undefined;
  return {
    writer,
    contentType: METRICS_CONTENT_TYPE,
    async scrape() {
      // Threads measure event-loop delay only while someone scrapes (src/core/threads/thread-sampler.ts).
      writer.setThread('scrapedAtMs', Date.now());
      exposition ??= import('./metrics-exposition.js').then((m) => m.buildExposition(src));
      return (await exposition).scrape();
    },
    close: stopSampler,
  };
}

/**
 * The Prometheus exposition of the daemon's shared metrics buffer (src/core/threads/metrics-buffer.ts),
 * built with prom-client from collect callbacks that read the buffer at scrape time. Imported by
 * ./metrics.ts on the first scrape only: prom-client cost the main thread ~3 MB of heap and ~10 MB RSS in
 * every daemon, most of which are never scraped (issue 12, idle RSS).
 */
import { Counter, Gauge, Registry, type Metric } from 'prom-client';
import type { BrokerSnapshot } from '../core/broker/types.js';
import { RateLimiter } from '../core/threads/rate-limit.js';
import {
  BUCKETS_MS,
  CAP_NONE,
  CAP_OTHER,
  capabilityKey,
  FIRST_WORKER_REGION,
  MetricsReader,
  REGION_CRYPTO,
  REGION_MAIN,
  RETRY_REASONS,
  STAGES,
  TRANSPORTS,
  type HistogramData,
  type Stage,
} from '../core/threads/metrics-buffer.js';
import type { MetricsSources } from './metrics.js';

export interface Exposition {
  readonly contentType: string;
  scrape(): Promise<string>;
}

const STAGE_METRIC: Readonly<Record<Stage, readonly [string, string]>> = {
  policy: ['aivault_policy_seconds', 'Time from receiving a call to its plan and rate-limit decision.'],
  secret: ['aivault_secret_seconds', 'Time to obtain the secret values (worker cache or crypto worker).'],
  ttfb: [
    'aivault_upstream_ttfb_seconds',
    'Time from sending the upstream request to its response head (connect included when new).',
  ],
  total: ['aivault_call_seconds', 'Time a call spent in the daemon, start to last byte (relays: lifetime).'],
};

const LE = [...BUCKETS_MS.map((ms) => String(ms / 1000)), '+Inf'];

/**
 * A histogram whose buckets already exist (summed from the buffer): prom-client's Histogram can only
 * observe, so this implements the one method the registry calls (`get`).
 */
function bufferHistogram(
  name: string,
  help: string,
  series: () => { labels: Record<string, string>; data: HistogramData }[],
): Metric {
  const metric = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    get() {
      const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
      for (const { labels, data } of series()) {
        data.cumulative.forEach((value, i) =>
          values.push({ labels: { ...labels, le: LE[i] as string }, value, metricName: `${name}_bucket` }),
        );
        values.push({ labels, value: data.sumMs / 1000, metricName: `${name}_sum` });
        values.push({ labels, value: data.count, metricName: `${name}_count` });
      }
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
  };
  return metric as unknown as Metric;
}

export function buildExposition(src: MetricsSources): Exposition {
  const reader = new MetricsReader(src.buffer);
  const limiter = new RateLimiter(src.rateLimit);
  const registry = new Registry();

  /** Capability key → catalog id, for every id ever seen (a deleted capability keeps its label). */
  const names = new Map<bigint, string>();
  let named: BrokerSnapshot | undefined;
  let snapshot: BrokerSnapshot | undefined;
  /** Refresh the catalog view once per scrape (collect callbacks then read it synchronously). */
  const refresh = async (): Promise<void> => {
    try {
      snapshot = await src.snapshot();
    } catch {
      snapshot = undefined; // a locked or unreadable vault: counts still go out, labelled `_unknown`
    }
    if (snapshot && snapshot !== named) {
      named = snapshot;
      for (const id of snapshot.capabilities.keys()) names.set(capabilityKey(id), id);
    }
  };
  const capLabel = (cap: number, slots: Map<number, bigint>): string => {
    if (cap === CAP_NONE) return '_none';
    if (cap === CAP_OTHER) return '_other';
    const key = slots.get(cap);
    return (key !== undefined && names.get(key)) || '_unknown';
  };
  const threadName = (region: number): string =>
    region === REGION_MAIN
      ? 'main'
      : region === REGION_CRYPTO
        ? 'crypto'
        : `worker-${region - FIRST_WORKER_REGION}`;
  const sampledThreads = (): number[] => {
    const out: number[] = [];
    for (let r = 0; r < reader.regions; r++) {
      if (r >= REGION_CRYPTO + 1 && r < FIRST_WORKER_REGION) continue; // the spare region runs no sampler
      if (reader.thread(r).sampledAtMs > 0) out.push(r);
    }
    return out;
  };

  registry.registerMetric(
    new Counter({
      name: 'aivault_calls_total',
      help: 'Calls by capability (catalog id; _none when none was planned), transport and outcome (ok or the error code).',
      labelNames: ['capability', 'transport', 'outcome'],
      registers: [],
      collect() {
        this.reset();
        const slots = reader.capabilitySlots();
        for (const s of reader.calls()) {
          if (s.value > 0) {
            this.inc(
              { capability: capLabel(s.cap, slots), transport: s.transport, outcome: s.outcome },
              s.value,
            );
          }
        }
      },
    }),
  );
  registry.registerMetric(
    new Counter({
      name: 'aivault_refusals_total',
      help: 'Calls aivault refused (policy, auth, bad input, capacity) by transport and error code.',
      labelNames: ['transport', 'code'],
      registers: [],
      collect() {
        this.reset();
        for (const r of reader.refusals()) this.inc({ transport: r.transport, code: r.code }, r.value);
      },
    }),
  );
  for (const stage of STAGES) {
    const [name, help] = STAGE_METRIC[stage];
    registry.registerMetric(
      bufferHistogram(name, help, () =>
        TRANSPORTS.map((transport) => ({
          labels: { transport },
          data: reader.stage(stage, transport),
        })).filter((s) => s.data.count > 0),
      ),
    );
  }
  registry.registerMetric(
    bufferHistogram(
      'aivault_upstream_connect_seconds',
      'Time to establish a new upstream connection (DNS, TCP, TLS); kept-alive calls make none.',
      () => [{ labels: {}, data: reader.connect() }],
    ),
  );
  registry.registerMetric(
    new Counter({
      name: 'aivault_upstream_retries_total',
      help: 'Requests sent to the upstream again (refused_stream: an HTTP/2 stream the server refused unprocessed).',
      labelNames: ['reason'],
      registers: [],
      collect() {
        this.reset();
        for (const reason of RETRY_REASONS) this.inc({ reason }, reader.upstreamRetries(reason));
      },
    }),
  );
  const perTransport = (name: string, help: string, read: (t: (typeof TRANSPORTS)[number]) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['transport'],
      registers: [],
      collect() {
        for (const transport of TRANSPORTS) this.set({ transport }, read(transport));
      },
    });
  registry.registerMetric(
    perTransport('aivault_calls_in_flight', 'Calls being processed now.', (t) => reader.inFlight(t)),
  );
  registry.registerMetric(
    perTransport(
      'aivault_open_streams',
      'Streamed responses whose head went out and whose body has not ended, and open WebSocket relays.',
      (t) => reader.openStreams(t),
    ),
  );
  const scrubCounter = (name: string, help: string, field: 'responses' | 'values') =>
    new Counter({
      name,
      help,
      labelNames: ['transport'],
      registers: [],
      collect() {
        this.reset();
        for (const transport of TRANSPORTS) this.inc({ transport }, reader.scrubbed(transport)[field]);
      },
    });
  registry.registerMetric(
    scrubCounter(
      'aivault_scrubbed_responses_total',
      'Responses in which a reflected secret value was replaced.',
      'responses',
    ),
  );
  registry.registerMetric(
    scrubCounter('aivault_scrubbed_values_total', 'Reflected secret values replaced in responses.', 'values'),
  );
  registry.registerMetric(
    new Gauge({
      name: 'aivault_rate_limit_headroom',
      help: 'Calls a rate-limited capability may still make in the current 60 s window (limit - used).',
      labelNames: ['capability'],
      registers: [],
      collect() {
        this.reset();
        if (!snapshot) return;
        for (const [id, policy] of snapshot.policies) {
          const limit = policy.rateLimitPerMinute;
          if (limit === undefined) continue;
          this.set({ capability: id }, Math.max(0, limit - limiter.used(id)));
        }
      },
    }),
  );
  registry.registerMetric(
    new Gauge({
      name: 'aivault_crypto_worker_utilization',
      help: 'Event-loop utilisation (0-1) of the crypto worker over the last second.',
      registers: [],
      collect() {
        this.set(reader.thread(REGION_CRYPTO).eluPpm / 1e6);
      },
    }),
  );
  if (src.activeWorkers) {
    const active = src.activeWorkers.bind(src);
    registry.registerMetric(
      new Gauge({
        name: 'aivault_request_workers_active',
        help: 'Request workers taking new calls (calls go to as few as keep up).',
        registers: [],
        collect() {
          this.set(active());
        },
      }),
    );
  }
  registry.registerMetric(
    new Gauge({
      name: 'aivault_thread_utilization',
      help: 'Event-loop utilisation (0-1) per daemon thread over the last second.',
      labelNames: ['thread'],
      registers: [],
      collect() {
        this.reset();
        for (const r of sampledThreads()) this.set({ thread: threadName(r) }, reader.thread(r).eluPpm / 1e6);
      },
    }),
  );
  registry.registerMetric(
    new Gauge({
      name: 'aivault_event_loop_delay_seconds',
      help: 'Event-loop delay per daemon thread over the last second (stat: p50, p99, max, mean).',
      labelNames: ['thread', 'stat'],
      registers: [],
      collect() {
        this.reset();
        for (const r of sampledThreads()) {
          const t = reader.thread(r);
          const thread = threadName(r);
          this.set({ thread, stat: 'p50' }, t.eldP50Us / 1e6);
          this.set({ thread, stat: 'p99' }, t.eldP99Us / 1e6);
          this.set({ thread, stat: 'max' }, t.eldMaxUs / 1e6);
          this.set({ thread, stat: 'mean' }, t.eldMeanUs / 1e6);
        }
      },
    }),
  );
  registry.registerMetric(
    new Gauge({
      name: 'aivault_thread_heap_used_bytes',
      help: 'V8 heap in use per daemon thread.',
      labelNames: ['thread'],
      registers: [],
      collect() {
        this.reset();
        for (const r of sampledThreads()) this.set({ thread: threadName(r) }, reader.thread(r).heapUsedBytes);
      },
    }),
  );
  registry.registerMetric(
    new Gauge({
      name: 'aivault_thread_heap_total_bytes',
      help: 'V8 heap size per daemon thread (what it holds, used or not).',
      labelNames: ['thread'],
      registers: [],
      collect() {
        this.reset();
        for (const r of sampledThreads())
          this.set({ thread: threadName(r) }, reader.thread(r).heapTotalBytes);
      },
    }),
  );
  registry.registerMetric(
    new Counter({
      name: 'aivault_thread_idle_releases_total',
      help: 'Full collections a daemon thread ran to give its heap back once quiet after a burst.',
      labelNames: ['thread'],
      registers: [],
      collect() {
        this.reset();
        for (const r of sampledThreads()) this.inc({ thread: threadName(r) }, reader.thread(r).idleReleases);
      },
    }),
  );
  registry.registerMetric(
    new Gauge({
      name: 'aivault_process_resident_memory_bytes',
      help: 'Resident set size of the aivaultd process (all threads).',
      registers: [],
      collect() {
        this.set(process.memoryUsage.rss());
      },
    }),
  );

  return {
    contentType: registry.contentType,
    async scrape() {
      await refresh();
      return registry.metrics();
    },
  };
}

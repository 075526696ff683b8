/**
 * aivaultd's metrics in one SharedArrayBuffer, allocated by the main thread and handed to every request
 * worker and to the crypto worker in workerData (like the rate-limit table and the vault generation).
 * Threads count into it with Atomics (a few ns, no message per call); the main thread reads it only when
 * /metrics is scraped (src/front/metrics.ts turns it into prom-client metrics). Runs on every thread of
 * the daemon. Holds counters and timings only: never a secret, a token, a path or caller text.
 *
 * Layout: a global part shared by all threads, then one region per thread (0 main, 1 crypto, 2 a spare
 * for work that runs before a worker got its region, 3… request workers), so each thread adds into its
 * own cache lines. A replaced request worker takes over its predecessor's region: counters never go
 * back. Every word is 64-bit (BigInt64Array): counters never wrap.
 *
 * Label cardinality is bounded by construction:
 * - capability ids take a slot of a fixed table (CAP_SLOTS), keyed by a 63-bit hash of the id, and only
 *   ids the catalog planned are ever claimed (a caller's unknown string never is: it counts as `_none`).
 *   A full table counts into `_other`. The main thread labels a slot with the catalog id whose hash it
 *   is, so a label is always a catalog id.
 * - a call series is (capability slot, transport, outcome), claimed in a fixed table (SERIES_SLOTS) of
 *   31-bit keys; a full table counts into a dense per-(transport, outcome) overflow row (`_other`).
 * - transports, outcomes (`ok` + the stable error codes), stages and buckets are fixed lists.
 */
import { createHash } from 'node:crypto';
import { ERROR_CODES, type ErrorCode } from '../errors.js';

export const TRANSPORTS = ['socket', 'proxy', 'passthrough', 'ws', 'https-proxy'] as const;
export type Transport = (typeof TRANSPORTS)[number];

/** `ok` (the upstream answered, any status) or the call's stable error code. */
export type Outcome = 'ok' | ErrorCode;
export const OUTCOMES: readonly Outcome[] = Object.freeze(['ok', ...ERROR_CODES] as Outcome[]);

/**
 * Codes that mean aivault refused the call (policy, auth, bad input, capacity), as opposed to a call that
 * failed on the way (upstream unreachable, vault locked, internal).
 */
export const REFUSAL_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'policy_violation',
  'capability_not_found',
  'credential_not_found',
  'credential_ambiguous',
  'token_invalid',
  'invalid_request',
  'operator_auth_required',
  'rate_limited',
  'body_too_large',
  'daemon_busy',
]);

/** Per-call stages with a histogram per transport (upstream connect is per connection: CONNECT below). */
export const STAGES = ['policy', 'secret', 'ttfb', 'total'] as const;
export type Stage = (typeof STAGES)[number];

/** Histogram upper bounds in milliseconds (+Inf is implicit). Fixed: they are slots in the buffer. */
export const BUCKETS_MS = Object.freeze([
  0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000,
]);

/** Per-thread gauges, written by each thread's sampler (src/core/threads/thread-sampler.ts). */
export const THREAD_FIELDS = [
  'eldP50Us',
  'eldP99Us',
  'eldMaxUs',
  'eldMeanUs',
  /** Event-loop utilisation over the last sample interval, in parts per million. */
  'eluPpm',
  'heapUsedBytes',
  /** V8 heap size of the thread (what it holds from the system, used or not). */
  'heapTotalBytes',
  /** Full collections run because the thread went quiet after a burst (src/core/threads/idle-release.ts). */
  'idleReleases',
  /** Date.now() of the last sample (0: this region's thread never sampled). */
  'sampledAtMs',
  /** Main thread's region only: Date.now() of the last /metrics scrape (0: never scraped). */
  'scrapedAtMs',
] as const;
export type ThreadField = (typeof THREAD_FIELDS)[number];

/**
 * Why a request was sent to the upstream again: `refused_stream`, an HTTP/2 stream the server refused
 * before acting on it (REFUSED_STREAM, or past a GOAWAY's last stream; src/request-worker/pipeline/
 * upstream.ts).
 */
export const RETRY_REASONS = ['refused_stream'] as const;
export type RetryReason = (typeof RETRY_REASONS)[number];

export const REGION_MAIN = 0;
export const REGION_CRYPTO = 1;
export const REGION_SPARE = 2;
export const FIRST_WORKER_REGION = 3;

export const CAP_SLOTS = 512;
/** Capability index of a call whose capability did not come out of the catalog. */
export const CAP_NONE = CAP_SLOTS;
/** Capability index when the table is full. */
export const CAP_OTHER = CAP_SLOTS + 1;
export const SERIES_SLOTS = 1024;

const T = TRANSPORTS.length;
const O = OUTCOMES.length;
const B = BUCKETS_MS.length + 1; // + the +Inf bucket
const HIST_WORDS = B + 1; // buckets, then the sum in microseconds
const HISTS = STAGES.length * T + 1; // + upstream connect

// Region word offsets.
const SERIES = 0;
const OVERFLOW = SERIES + SERIES_SLOTS;
const REFUSALS = OVERFLOW + T * O;
const HIST = REFUSALS + T * O;
const IN_FLIGHT = HIST + HISTS * HIST_WORDS;
const OPEN_STREAMS = IN_FLIGHT + T;
const SCRUBBED_RESPONSES = OPEN_STREAMS + T;
const SCRUBBED_VALUES = SCRUBBED_RESPONSES + T;
const UPSTREAM_RETRIES = SCRUBBED_VALUES + T;
const THREAD = UPSTREAM_RETRIES + RETRY_REASONS.length;
const REGION_WORDS = THREAD + THREAD_FIELDS.length;

const CAP_KEYS_BYTES = CAP_SLOTS * 8;
const SERIES_KEYS_BYTES = SERIES_SLOTS * 4;
const GLOBAL_BYTES = CAP_KEYS_BYTES + SERIES_KEYS_BYTES;
const REGION_BYTES = REGION_WORDS * 8;

const TRANSPORT_INDEX: ReadonlyMap<string, number> = new Map(TRANSPORTS.map((t, i) => [t, i]));
const OUTCOME_INDEX: ReadonlyMap<string, number> = new Map(OUTCOMES.map((o, i) => [o, i]));
const STAGE_INDEX: ReadonlyMap<string, number> = new Map(STAGES.map((s, i) => [s, i]));

/** Allocate the buffer (main thread) for `workers` request workers. */
export function createMetricsBuffer(workers: number): SharedArrayBuffer {
  if (!Number.isInteger(workers) || workers < 1) throw new TypeError('workers must be a positive integer');
  return new SharedArrayBuffer(GLOBAL_BYTES + (FIRST_WORKER_REGION + workers) * REGION_BYTES);
}

/** The 63-bit non-zero key of a capability id (the main thread hashes catalog ids to label slots). */
export function capabilityKey(capabilityId: string): bigint {
  const key =
    createHash('sha256').update(capabilityId, 'utf8').digest().readBigInt64BE(0) & 0x7fffffffffffffffn;
  return key === 0n ? 1n : key;
}

function bucketOf(ms: number): number {
  for (let i = 0; i < BUCKETS_MS.length; i++) if (ms <= (BUCKETS_MS[i] as number)) return i;
  return BUCKETS_MS.length;
}

/** Series key: capability index (10 bits), transport (4 bits), outcome (8 bits), + 1 so 0 means free. */
const seriesKey = (cap: number, transport: number, outcome: number): number =>
  ((cap << 12) | (transport << 8) | outcome) + 1;

/** The views every thread shares. */
class MetricsViews {
  readonly capKeys: BigInt64Array;
  readonly seriesKeys: Int32Array;
  readonly regions: number;
  protected readonly buffer: SharedArrayBuffer;

  constructor(buffer: SharedArrayBuffer) {
    const regions = (buffer.byteLength - GLOBAL_BYTES) / REGION_BYTES;
    if (!Number.isInteger(regions) || regions <= FIRST_WORKER_REGION) {
      throw new TypeError('not a metrics buffer (use createMetricsBuffer)');
    }
    this.buffer = buffer;
    this.regions = regions;
    this.capKeys = new BigInt64Array(buffer, 0, CAP_SLOTS);
    this.seriesKeys = new Int32Array(buffer, CAP_KEYS_BYTES, SERIES_SLOTS);
  }

  protected region(index: number): BigInt64Array {
    return new BigInt64Array(this.buffer, GLOBAL_BYTES + index * REGION_BYTES, REGION_WORDS);
  }

  #mainRegion: BigInt64Array | undefined;

  /** Date.now() of the last /metrics scrape (0: never), as the main thread recorded it. */
  lastScrapeMs(): number {
    this.#mainRegion ??= this.region(REGION_MAIN);
    return Number(Atomics.load(this.#mainRegion, THREAD + THREAD_FIELDS.indexOf('scrapedAtMs')));
  }
}

/** One thread's writer: every method is a few Atomics on this thread's region. */
export class MetricsWriter extends MetricsViews {
  private readonly words: BigInt64Array;
  private readonly capCache = new Map<string, number>();
  private readonly seriesCache = new Map<number, number>();

  constructor(buffer: SharedArrayBuffer, region: number) {
    super(buffer);
    if (!Number.isInteger(region) || region < 0 || region >= this.regions) {
      throw new RangeError(`metrics region ${region} out of range`);
    }
    this.words = this.region(region);
  }

  /** The slot of a capability id the catalog planned (never pass caller input here). */
  capability(capabilityId: string | undefined): number {
    if (capabilityId === undefined) return CAP_NONE;
    const cached = this.capCache.get(capabilityId);
    if (cached !== undefined) return cached;
    const key = capabilityKey(capabilityId);
    const start = Number(key % BigInt(CAP_SLOTS));
    let found = CAP_OTHER;
    for (let n = 0; n < CAP_SLOTS; n++) {
      const i = (start + n) % CAP_SLOTS;
      const prev = Atomics.compareExchange(this.capKeys, i, 0n, key);
      if (prev === 0n || prev === key) {
        found = i;
        break;
      }
    }
    this.capCache.set(capabilityId, found);
    return found;
  }

  /** One finished call (and one refusal when its code is a refusal). */
  call(transport: Transport, cap: number, outcome: Outcome): void {
    const t = TRANSPORT_INDEX.get(transport) as number;
    const o = OUTCOME_INDEX.get(outcome) ?? (OUTCOME_INDEX.get('internal') as number);
    Atomics.add(this.words, this.seriesSlot(cap, t, o), 1n);
    if (outcome !== 'ok' && REFUSAL_CODES.has(outcome)) Atomics.add(this.words, REFUSALS + t * O + o, 1n);
  }

  private seriesSlot(cap: number, t: number, o: number): number {
    const key = seriesKey(cap, t, o);
    const cached = this.seriesCache.get(key);
    if (cached !== undefined) return cached;
    let found = OVERFLOW + t * O + o;
    const start = (key * 2654435761) >>> 0;
    for (let n = 0; n < SERIES_SLOTS; n++) {
      const i = (start + n) % SERIES_SLOTS;
      const prev = Atomics.compareExchange(this.seriesKeys, i, 0, key);
      if (prev === 0 || prev === key) {
        found = SERIES + i;
        break;
      }
    }
    this.seriesCache.set(key, found);
    return found;
  }

  /** A refusal that never became a call in a worker (e.g. the HTTP listener's token check). */
  refusal(transport: Transport, code: ErrorCode): void {
    this.call(transport, CAP_NONE, code);
  }

  observe(stage: Stage, transport: Transport, ms: number): void {
    const h = (STAGE_INDEX.get(stage) as number) * T + (TRANSPORT_INDEX.get(transport) as number);
    this.hist(h, ms);
  }

  /** A new upstream connection took `ms` to establish (DNS + TCP + TLS), or to fail. */
  observeConnect(ms: number): void {
    this.hist(HISTS - 1, ms);
  }

  private hist(h: number, ms: number): void {
    const base = HIST + h * HIST_WORDS;
    Atomics.add(this.words, base + bucketOf(ms), 1n);
    Atomics.add(this.words, base + B, BigInt(Math.max(0, Math.round(ms * 1000))));
  }

  inFlight(transport: Transport, delta: 1 | -1): void {
    Atomics.add(this.words, IN_FLIGHT + (TRANSPORT_INDEX.get(transport) as number), BigInt(delta));
  }

  openStreams(transport: Transport, delta: 1 | -1): void {
    Atomics.add(this.words, OPEN_STREAMS + (TRANSPORT_INDEX.get(transport) as number), BigInt(delta));
  }

  /** A response in which `values` reflected secret values were replaced. */
  scrubbed(transport: Transport, values: number): void {
    if (!(values > 0)) return;
    const t = TRANSPORT_INDEX.get(transport) as number;
    Atomics.add(this.words, SCRUBBED_RESPONSES + t, 1n);
    Atomics.add(this.words, SCRUBBED_VALUES + t, BigInt(Math.floor(values)));
  }

  /** A request sent to the upstream again (the call's own outcome is counted once, by `call`). */
  upstreamRetry(reason: RetryReason): void {
    Atomics.add(this.words, UPSTREAM_RETRIES + RETRY_REASONS.indexOf(reason), 1n);
  }

  setThread(field: ThreadField, value: number): void {
    Atomics.store(this.words, THREAD + THREAD_FIELDS.indexOf(field), BigInt(Math.max(0, Math.round(value))));
  }
}

export interface SeriesCount {
  /** Capability slot, CAP_NONE or CAP_OTHER. */
  readonly cap: number;
  readonly transport: Transport;
  readonly outcome: Outcome;
  readonly value: number;
}

export interface HistogramData {
  /** Cumulative counts per BUCKETS_MS bound, then +Inf (= the count). */
  readonly cumulative: readonly number[];
  readonly count: number;
  readonly sumMs: number;
}

/** The main thread's reader: sums every region at scrape time. */
export class MetricsReader extends MetricsViews {
  private readonly all: BigInt64Array[];

  constructor(buffer: SharedArrayBuffer) {
    super(buffer);
    this.all = Array.from({ length: this.regions }, (_, i) => this.region(i));
  }

  private sum(word: number): number {
    let n = 0n;
    for (const r of this.all) n += Atomics.load(r, word);
    return Number(n);
  }

  /** Claimed capability slots: slot → key (the main thread maps keys back to catalog ids). */
  capabilitySlots(): Map<number, bigint> {
    const out = new Map<number, bigint>();
    for (let i = 0; i < CAP_SLOTS; i++) {
      const key = Atomics.load(this.capKeys, i);
      if (key !== 0n) out.set(i, key);
    }
    return out;
  }

  calls(): SeriesCount[] {
    const out: SeriesCount[] = [];
    for (let i = 0; i < SERIES_SLOTS; i++) {
      const key = Atomics.load(this.seriesKeys, i);
      if (key === 0) continue;
      const k = key - 1;
      out.push({
        cap: k >>> 12,
        transport: TRANSPORTS[(k >>> 8) & 0xf] as Transport,
        outcome: OUTCOMES[k & 0xff] as Outcome,
        value: this.sum(SERIES + i),
      });
    }
    for (let t = 0; t < T; t++) {
      for (let o = 0; o < O; o++) {
        const value = this.sum(OVERFLOW + t * O + o);
        if (value > 0) {
          out.push({
            cap: CAP_OTHER,
            transport: TRANSPORTS[t] as Transport,
            outcome: OUTCOMES[o] as Outcome,
            value,
          });
        }
      }
    }
    return out;
  }

  refusals(): { transport: Transport; code: ErrorCode; value: number }[] {
    const out: { transport: Transport; code: ErrorCode; value: number }[] = [];
    for (let t = 0; t < T; t++) {
      for (let o = 1; o < O; o++) {
        const value = this.sum(REFUSALS + t * O + o);
        if (value > 0) {
          out.push({ transport: TRANSPORTS[t] as Transport, code: OUTCOMES[o] as ErrorCode, value });
        }
      }
    }
    return out;
  }

  private histogram(h: number): HistogramData {
    const base = HIST + h * HIST_WORDS;
    const cumulative: number[] = [];
    let acc = 0;
    for (let b = 0; b < B; b++) {
      acc += this.sum(base + b);
      cumulative.push(acc);
    }
    return { cumulative, count: acc, sumMs: this.sum(base + B) / 1000 };
  }

  stage(stage: Stage, transport: Transport): HistogramData {
    return this.histogram(
      (STAGE_INDEX.get(stage) as number) * T + (TRANSPORT_INDEX.get(transport) as number),
    );
  }

  connect(): HistogramData {
    return this.histogram(HISTS - 1);
  }

  inFlight(transport: Transport): number {
    return this.sum(IN_FLIGHT + (TRANSPORT_INDEX.get(transport) as number));
  }

  openStreams(transport: Transport): number {
    return this.sum(OPEN_STREAMS + (TRANSPORT_INDEX.get(transport) as number));
  }

  scrubbed(transport: Transport): { responses: number; values: number } {
    const t = TRANSPORT_INDEX.get(transport) as number;
    return { responses: this.sum(SCRUBBED_RESPONSES + t), values: this.sum(SCRUBBED_VALUES + t) };
  }

  upstreamRetries(reason: RetryReason): number {
    return this.sum(UPSTREAM_RETRIES + RETRY_REASONS.indexOf(reason));
  }

  thread(region: number): Record<ThreadField, number> {
    const r = this.all[region];
    const out = {} as Record<ThreadField, number>;
    THREAD_FIELDS.forEach((f, i) => (out[f] = r ? Number(Atomics.load(r, THREAD + i)) : 0));
    return out;
  }

  /**
   * A request worker died: its in-flight calls and open streams are gone (the gauges would otherwise
   * keep them). Called by the main thread before the replacement worker takes over the region.
   */
  resetGauges(region: number): void {
    const r = this.all[region];
    if (!r) return;
    for (let t = 0; t < T; t++) {
      Atomics.store(r, IN_FLIGHT + t, 0n);
      Atomics.store(r, OPEN_STREAMS + t, 0n);
    }
  }
}

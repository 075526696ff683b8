/**
 * Request worker entry (piscina): thin. The pool runs one `attach` task per worker, which hands over this
 * worker's long-lived MessagePort to the main thread; invocations are started, credited, cancelled and
 * answered on it, multiplexed by call id (see src/core/threads/call-port.ts). The default export is the
 * WebSocket relay task (one piscina task + MessagePort per relay). Secrets come from the crypto worker
 * over this worker's private port; this thread never holds the KEK, and its environment is empty.
 */
import { threadId, workerData, type MessagePort } from 'node:worker_threads';
import { AivaultError, toWire } from '../core/errors.js';
import { hasDevRequests } from '../core/config/env.js';
import { configFromWorkerData } from '../core/threads/crypto-protocol.js';
import { CryptoPortClient } from './crypto-client.js';
import type { AttachTask, RequestWorkerData } from '../pool/request-workers.js';
import {
  createPortSink,
  type CallMessage,
  type CallStart,
  type MainToWorker,
  type MainToWorkerPort,
  type WorkerPortToMain,
  type WorkerToMain,
} from '../core/threads/call-port.js';
import { createPipelineDeps } from './pipeline/deps.js';
import { envelopeOf } from './pipeline/call-request.js';
import { invokeCapability } from './pipeline/invoke.js';
import { RateLimiter, type Admission } from '../core/threads/rate-limit.js';
import type { AskApproval, SecretSource } from './pipeline/types.js';
import type { ApprovalOutcome } from '../front/approvals.js';
import { Generation, perGeneration } from '../core/threads/generation.js';
import { CallSignal } from '../core/threads/call-signal.js';
import { ActiveCalls } from './active-calls.js';
import { ChunkBuffers } from '../core/threads/chunk-buffers.js';
import { eachMessage, PortOutbox } from '../core/threads/port-outbox.js';
import { cachedDecrypt, SecretCache } from './secret-cache.js';
import { bindScrubberCache, dropScrubbers } from './pipeline/scrubber-cache.js';
import { forgetKeptValues } from './forget.js';
import { registry } from '../core/registry/index.js';
import { setPolicySealSource } from '../stores/vault/policy-seal.js';
import type { WsTask } from '../core/threads/ws-protocol.js';
import type * as WsUpstream from './ws-upstream.js';
import { MetricsWriter, REGION_SPARE, type Outcome, type Transport } from '../core/threads/metrics-buffer.js';
import { startThreadSampler } from '../core/threads/thread-sampler.js';
import { setUpstreamObserver } from './pipeline/upstream.js';
import type { AuditInput } from '../stores/audit/audit-log.js';
import type { CallTiming } from './pipeline/types.js';
import type { Envelope } from '../core/broker/types.js';

const data = workerData as RequestWorkerData;
const config = configFromWorkerData(data);
// Fleet mode (--fleet-redis): the shared Redis window; otherwise the process-wide SharedArrayBuffer table.
// ioredis is imported only then: ~560 KB of source plus its command table, in every worker's heap
// otherwise (issue 12, memory; bench/PROFILE.md).
const fleet = config.fleet?.redisUrl
  ? new (await import('../stores/fleet/redis-admission.js')).RedisAdmission({
      url: config.fleet.redisUrl,
      fleetId: config.fleet.id,
      failOpen: config.fleet.failOpen,
      audit: async (event) => {
        await deps.audit(event);
      },
    })
  : undefined;
const rateLimiter: Admission =
  fleet ?? new RateLimiter(data.rateLimit, Date.now, config.testing?.rateLimitLockStaleMs);
const generation = new Generation(data.generation);
/**
 * This worker's metrics writer: the spare region until the pool's attach task names this worker's own
 * (src/core/threads/metrics-buffer.ts). Counting is a few Atomics per call, never a message.
 */
let metrics = new MetricsWriter(data.metrics, REGION_SPARE);
let stopSampler: (() => void) | undefined;
// New upstream connections (DNS + TCP + TLS) are timed in the connector, and refused h2 streams sent again
// are counted (src/request-worker/pipeline/upstream.ts).
setUpstreamObserver({
  connect: (ms) => metrics.observeConnect(ms),
  refusedRetry: () => metrics.upstreamRetry('refused_stream'),
});

/** This worker's crypto client, obtained once through the first call's port (`need-crypto`). */
let crypto: Promise<CryptoPortClient> | undefined;

function cryptoVia(port: MessagePort): Promise<CryptoPortClient> {
  if (crypto) return crypto;
  const pending = new Promise<CryptoPortClient>((resolve) => {
    const onMessage = (msg: MainToWorker): void => {
      if (msg.t !== 'crypto-port') return;
      port.off('message', onMessage);
      const client = new CryptoPortClient(msg.port);
      // The crypto worker died: forget this client so the next call asks for a port to its replacement.
      client.onClose(() => {
        if (crypto === pending) crypto = undefined;
      });
      resolve(client);
    };
    port.on('message', onMessage);
    port.postMessage({ t: 'need-crypto' } satisfies WorkerToMain);
  });
  crypto = pending;
  return pending;
}

/** The client obtained by this call (cryptoVia ran first); vault_unavailable if its worker just died. */
function currentCrypto(): Promise<CryptoPortClient> {
  if (!crypto)
    return Promise.reject(new AivaultError('vault_unavailable', 'the crypto worker stopped; retry the call'));
  return crypto;
}

/** Secrets for every call of this worker; valid once the first call has obtained the crypto port. */
/**
 * The crypto worker's dev verdict, per vault generation: it changes only with vault.json or the KEK
 * (rotate-master, lock/unlock, a crypto-worker restart), all of which bump the generation.
 */
const devVerdict = perGeneration(generation, 'dev', async () => (await currentCrypto()).dev());

/** Decrypted values of this worker (src/request-worker/secret-cache.ts); zeroed at shutdown. */
const secretCache = new SecretCache(generation);
// The reflected-secret matchers hold values too: same generation rule (src/request-worker/pipeline/scrubber-cache.ts).
bindScrubberCache(generation);

const secrets: SecretSource = {
  async devOverrides() {
    // Nothing requested (every production call): no crypto round trip for a verdict that changes nothing.
    if (!hasDevRequests(config.devRequested)) return undefined;
    return (await devVerdict()) ? config.devRequested : undefined;
  },
  // Warm calls are answered from this worker's secure-memory cache (no crypto round trip); dropped on a bump.
  decrypt: cachedDecrypt(secretCache, generation, async (ids) => (await currentCrypto()).decrypt(ids)),
  write: async (id, value) => (await currentCrypto()).write(id, value),
  async lease(id) {
    const client = await currentCrypto();
    const { leaseId, value } = await client.lease(id);
    return { value, release: (next?: string) => client.release(id, leaseId, next) };
  },
};

// Policy files (broker.json, capabilities.json) are verified with the MAC subkey the crypto worker hands
// out after checking vault.json's seal flag against the KEK; this thread never holds the KEK.
setPolicySealSource(config.vaultDir, async () => (await currentCrypto()).policySeal());

const deps = {
  ...createPipelineDeps(config, {
    registry,
    rateLimiter,
    secrets,
    generation,
    // The crypto worker derives the audit subkey; this thread never sees the KEK.
    auditKey: async () => (await currentCrypto()).auditKey(),
  }),
  // The message names the audit file and errno only (never event contents).
  onAuditError: (err: unknown) => process.stderr.write(`aivaultd: ${(err as Error).message}\n`),
};
const requestDeps = { ...deps, registry };

/** The relay module and the `ws` package, imported on the first relay (memory: most workers never relay). */
let wsRelay: Promise<typeof WsUpstream> | undefined;

/** WebSocket relay for the loopback HTTP listener (GET /aivault/ws): one piscina task per relay. */
export default async function handle(task: WsTask): Promise<void> {
  const start = performance.now();
  const w = metrics;
  w.inFlight('ws', 1);
  w.openStreams('ws', 1);
  // The relay's one `ws` audit event says how it ended; its capability is a catalog id only once the
  // plan was made (admit() sets the provider with it), else the caller's string: not a label then.
  let ended: AuditInput | undefined;
  const relayDeps = {
    ...deps,
    audit: (event: AuditInput): Promise<void> => {
      if (event.kind === 'ws') ended = event;
      return deps.audit(event);
    },
  };
  try {
    const { runWsRelay } = await (wsRelay ??= import('./ws-upstream.js'));
    await runWsRelay(relayDeps, task, cryptoVia(task.port));
  } finally {
    w.inFlight('ws', -1);
    w.openStreams('ws', -1);
    const cap = ended?.provider !== undefined ? ended.capability : await catalogIdOf(task.connect.capability);
    w.call('ws', w.capability(cap), (ended?.errorCode as Outcome | undefined) ?? 'ok');
    w.observe('total', 'ws', performance.now() - start);
  }
}

/**
 * `id` when the catalog has a capability of that name, else undefined: a refused call's capability is a
 * metrics label only when it is a catalog id (bounded, never caller text; src/core/threads/metrics-buffer.ts).
 */
async function catalogIdOf(id: unknown): Promise<string | undefined> {
  if (typeof id !== 'string') return undefined;
  const snapshot = await deps.catalog().catch(() => undefined);
  return snapshot?.capabilities.has(id) ? id : undefined;
}

/** The listener a call came from, when the main thread did not say (the request form tells). */
function transportOf(msg: CallStart): Transport {
  if (msg.transport) return msg.transport;
  if (msg.context.via) return msg.context.via; // the HTTPS proxy's calls take the /v/ passthrough form
  if ('envelopeJson' in msg) return 'proxy';
  if ('passthrough' in msg) return 'passthrough';
  // An envelope with a proxy token is the HTTPS (CONNECT) proxy's; socket frames never carry a token.
  return msg.context.token ? 'https-proxy' : 'socket';
}

/** Count one finished call into this worker's region of the metrics buffer. */
function record(w: MetricsWriter, transport: Transport, timing: CallTiming, outcome: Outcome): void {
  w.call(transport, w.capability(timing.capability), outcome);
  if (timing.policyMs !== undefined) w.observe('policy', transport, timing.policyMs);
  if (timing.secretMs !== undefined) w.observe('secret', transport, timing.secretMs);
  if (timing.upstreamMs !== undefined) w.observe('ttfb', transport, timing.upstreamMs);
  w.observe('total', transport, performance.now() - timing.start);
  w.scrubbed(transport, timing.scrubbed ?? 0);
}

/** One invocation started on the worker's port; its messages carry its id. */
async function runCall(
  port: MessagePort,
  out: PortOutbox,
  msg: CallStart,
  calls: ActiveCalls,
  buffers: ChunkBuffers,
): Promise<void> {
  // Not an AbortController: see src/core/threads/call-signal.ts (per-call cost).
  const cancel = new CallSignal();
  const timing: CallTiming = { start: performance.now() };
  const transport = transportOf(msg);
  const w = metrics;
  w.inFlight(transport, 1);
  let streaming = false;
  // A streamed call's head opens a stream (the open-streams gauge); a small one arrives whole.
  const onHead = msg.stream
    ? (): void => {
        if (streaming) return;
        streaming = true;
        w.openStreams(transport, 1);
      }
    : undefined;
  const sink = createPortSink(out, cancel, msg.id, timing, buffers, onHead);
  const active = calls.start(msg.id, sink, cancel);
  let outcome: Outcome = 'ok';
  let envelope: Envelope | undefined;
  // Only a capability with an `approval` policy asks: the main thread holds the pending list.
  const askApproval: AskApproval = (request) =>
    new Promise<ApprovalOutcome>((resolve, reject) => {
      if (cancel.aborted) return reject(cancel.reason as Error);
      const onAbort = (): void => reject(cancel.reason as Error);
      cancel.addEventListener('abort', onAbort, { once: true });
      active.approved = (outcome) => {
        active.approved = undefined;
        cancel.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      out.postMessage({
        t: 'approval',
        id: msg.id,
        request: { ...request, transport },
      } satisfies WorkerPortToMain);
    });
  try {
    await cryptoVia(port);
    await invokeCapability(
      deps,
      {
        envelope: (envelope = await envelopeOf(requestDeps, msg, msg.context)),
        context: msg.context,
        stream: msg.stream,
        ...(msg.timeoutMs !== undefined ? { timeoutMs: msg.timeoutMs } : {}),
        signal: cancel,
        askApproval,
        timing,
      },
      sink,
    );
  } catch (err) {
    // Through the sink: after anything it still holds (a coalesced head or chunks), in order.
    const wire = toWire(err);
    outcome = wire.error;
    sink.error(wire);
    // A call refused before its plan existed (wrong method, path, …) still counts under its capability
    // when that is a catalog id.
    timing.capability ??= await catalogIdOf(envelope?.capability);
  } finally {
    record(w, transport, timing, outcome);
    w.inFlight(transport, -1);
    if (streaming) w.openStreams(transport, -1);
    // Credits and aborts must reach the sink until it posted what it holds (end/error included).
    await sink.settled();
    calls.end(msg.id, active);
  }
}

/**
 * Piscina task run once per worker by the pool: keeps `task.port` as this worker's call port and returns
 * this thread's id at once (the port's listener keeps serving; the pool learns of this worker's death
 * from the port's `close` and piscina's `workerDestroy`).
 */
export function attach(task: AttachTask): number {
  const { port } = task;
  if (task.metricsRegion !== undefined) metrics = new MetricsWriter(data.metrics, task.metricsRegion);
  stopSampler?.();
  stopSampler = startThreadSampler(metrics);
  const calls = new ActiveCalls();
  const buffers = new ChunkBuffers();
  // Everything this worker says on its call port goes out in batches (src/core/threads/port-outbox.ts).
  // An answer the port refused (it could not be cloned) fails its call instead of leaving it unanswered.
  const out = new PortOutbox(port, 'microtask', (msg) => {
    const id = (msg as Partial<CallMessage>).id;
    if (typeof id !== 'number') return;
    try {
      port.postMessage({
        t: 'error',
        id,
        error: { error: 'internal', message: 'the answer could not be passed to the main thread' },
      } satisfies WorkerPortToMain);
    } catch {
      // nothing more this thread can say about it
    }
  });
  const onMessage = (msg: MainToWorkerPort): void => {
    switch (msg.t) {
      case 'call':
        void runCall(port, out, msg, calls, buffers);
        return;
      case 'credit':
        if (msg.bufs) buffers.give(msg.bufs);
        calls.get(msg.id)?.sink?.grant(msg.n);
        return;
      case 'approval':
        calls.get(msg.id)?.approved?.(msg.outcome);
        return;
      case 'abort':
        calls
          .get(msg.id)
          ?.cancel?.abort(new AivaultError('upstream_unreachable', 'invocation cancelled by the caller'));
        return;
      case 'forget':
        forgetKeptValues({ secretCache, forgetClientIdentities: () => deps.forgetClientIdentities() });
        return;
      case 'close':
        // Shutdown: close the audit day file and upstream pools explicitly (no FileHandle left to GC), and
        // zero the cached secret values (a thread's end frees memory without zeroing it).
        secretCache.clear();
        dropScrubbers();
        void Promise.all([deps.close(), fleet?.close()]).finally(() =>
          out.postMessage({ t: 'closed' } satisfies WorkerPortToMain),
        );
        return;
      default:
        return; // crypto-port: taken by cryptoVia's own listener
    }
  };
  port.on('message', (data: MainToWorkerPort | MainToWorkerPort[]) => eachMessage(data, onMessage));
  return threadId;
}

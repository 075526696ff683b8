/**
 * The request workers, seen from aivaultd's main thread: the piscina that runs them, one call port ("slot")
 * per worker, the load balancer that attaches them, which slot takes the next call, and what happens when
 * a worker dies. src/pool/daemon-pool.ts starts calls on the slot picked here (src/pool/pool-call.ts).
 *
 * Dispatch: piscina owns the request workers' lifecycle (start, replace a dead one, destroy), but calls do
 * not go through its task queue. Each worker runs one `attach` task that takes one end of a long-lived
 * MessageChannel (a "slot"); invocations are started, credited, cancelled and answered on that port,
 * multiplexed by call id (src/core/threads/call-port.ts). That replaced a piscina task + a new MessageChannel
 * per call (bench/PROFILE.md). A custom piscina balancer gives every worker exactly one attach task. When a
 * worker dies (its port closes, or piscina reports `workerDestroy`), its in-flight calls fail with
 * `internal` ("request worker failed") and a new slot is attached to the worker piscina starts in its
 * place. WebSocket relays still run as one piscina task each (with their own port), balanced here too.
 *
 * Which worker takes a call: the least loaded of the first few live workers (the "active set"), not of all
 * of them; src/pool/worker-spread.ts decides how many from each active worker's event-loop utilisation and
 * the machine's idle CPU, measured every SPREAD_WINDOW_MS here (src/pool/worker-load.ts). Workers start
 * as the set grows: one at start, up to --workers, each staying once started.
 */
import { MessageChannel, type MessagePort, type Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { AivaultError } from '../core/errors.js';
import type { MainToWorkerPort, WorkerPortToMain } from '../core/threads/call-port.js';
import type { toWorkerConfig } from '../core/threads/crypto-protocol.js';
import { FIRST_WORKER_REGION, MetricsReader } from '../core/threads/metrics-buffer.js';
import { eachMessage, PortOutbox } from '../core/threads/port-outbox.js';
import type { ApprovalStore } from '../front/approvals.js';
import type { LiveCall } from './pool-call.js';
import { workerEntry } from './worker-files.js';
import { workerResourceLimits } from './worker-limits.js';
import { createLoadMeter, type MeasureLoad } from './worker-load.js';
import { INITIAL_SPREAD, nextSpread, type SpreadState } from './worker-spread.js';

/** What every request worker receives as workerData (besides the dev-mode boot data). */
export interface RequestWorkerData {
  config: ReturnType<typeof toWorkerConfig>;
  rateLimit: SharedArrayBuffer;
  /** The vault generation (src/core/threads/generation.ts). */
  generation: SharedArrayBuffer;
  /** Counters and timings for /metrics (src/core/threads/metrics-buffer.ts). */
  metrics: SharedArrayBuffer;
}

/** The piscina task (export `attach` of the worker entry) that hands a worker its call port. */
export interface AttachTask {
  kind: 'attach';
  port: MessagePort;
  /**
   * This worker's region of the metrics buffer (a replacement worker takes over its predecessor's);
   * absent: the shared spare region.
   */
  metricsRegion?: number;
}

/** Main side of one request worker's call port. */
export interface Slot {
  readonly port: MessagePort;
  /**
   * Where this side posts on `port`: calls started, credits and aborts of one turn go as one message
   * (src/core/threads/port-outbox.ts). Everything for the worker's call handler goes through it, in order.
   */
  readonly out: PortOutbox;
  readonly calls: Map<number, LiveCall>;
  /** The worker's threadId once its attach task answered. */
  threadId?: number;
  /** Its worker stopped (slotDied ran once); it is no longer in the slot list, so only slotDied reads this. */
  dead: boolean;
  /** Shutdown: resolves when the worker answered `closed`. */
  onClosed?: () => void;
  /** The worker's region of the metrics buffer. */
  readonly metricsRegion: number;
  /** Pooled chunk buffers to give back to the worker with its next credit (src/core/threads/chunk-buffers.ts). */
  returning: ArrayBuffer[];
}

const ATTACH = 'attach';

type LoadBalancer = NonNullable<NonNullable<ConstructorParameters<typeof Piscina>[0]>['loadBalancer']>;

export interface RequestWorkersOptions {
  readonly threads: number;
  /** Concurrent calls per request worker (they are I/O bound). */
  readonly maxCallsPerWorker: number;
  readonly workerData: RequestWorkerData;
  /** Where a worker's `approval` questions go (the pool's store, shared with WebSocket relays). */
  readonly approvals: ApprovalStore;
  /** A worker asked for its private channel to the crypto worker (once per worker, on its first call). */
  readonly handOverCryptoPort: (workerPort: MessagePort) => void;
  /** Tests only: the active-set window and what measures it (src/pool/worker-spread.ts). */
  readonly spread?: { readonly intervalMs?: number; readonly measure?: MeasureLoad };
}

/** A call whose start message could not be posted to its worker: it fails as `internal`. */
export function failUnsent(slot: Slot, msg: MainToWorkerPort): void {
  if (msg.t !== 'call') return;
  const call = slot.calls.get(msg.id);
  if (!call) return;
  slot.calls.delete(msg.id);
  call.onMessage({
    t: 'error',
    id: msg.id,
    error: { error: 'internal', message: 'the call could not be handed to a request worker' },
  });
  call.finish();
}

/** How often the active set is reconsidered (worker-spread.ts asks for several windows in a row). */
const SPREAD_WINDOW_MS = 250;

export class RequestWorkers {
  readonly piscina: Piscina;
  private readonly slots: Slot[] = [];
  /** threadIds of workers that have taken an attach task (maintained by the balancer). */
  private readonly attached = new Set<number>();
  private readonly maxCallsPerWorker: number;
  private readonly approvals: ApprovalStore;
  private readonly metrics: SharedArrayBuffer;
  private readonly handOverCryptoPort: (workerPort: MessagePort) => void;
  /** Shutdown began: a worker that stops now is not replaced. */
  private closing = false;
  /** How many of the live slots (in order) take new calls; see src/pool/worker-spread.ts. */
  private spread: SpreadState = INITIAL_SPREAD;
  /** Calls started since the last window (no calls and one active worker: nothing to measure). */
  private started = 0;
  private readonly spreadTimer: NodeJS.Timeout;
  /** The most request workers (--workers); they are started as the active set grows. */
  private readonly maxWorkers: number;

  constructor(opts: RequestWorkersOptions) {
    const { threads } = opts;
    this.maxWorkers = Math.max(1, threads);
    this.approvals = opts.approvals;
    this.metrics = opts.workerData.metrics;
    this.handOverCryptoPort = opts.handOverCryptoPort;
    const entry = workerEntry('request-worker');
    const workerData: RequestWorkerData & Record<string, unknown> = { ...entry.bootData, ...opts.workerData };
    this.maxCallsPerWorker = opts.maxCallsPerWorker;
    // Every worker takes exactly one attach task (any worker without one: the counts match and slots are
    // interchangeable); other tasks (WebSocket relays) go to the least busy worker (piscina's default
    // policy; its LeastBusyBalancer is not exported).
    const balancer: LoadBalancer = (task, workers) => {
      if (task.name === ATTACH) {
        const w = workers.find((x) => !this.attached.has(x.id)) ?? null;
        if (w) this.attached.add(w.id);
        return w;
      }
      let best: (typeof workers)[number] | null = null;
      for (const w of workers) {
        if (w.currentUsage >= this.maxCallsPerWorker) continue;
        if (!best || w.currentUsage < best.currentUsage) best = w;
      }
      return best;
    };
    this.piscina = new Piscina({
      filename: entry.filename,
      // One worker at start; piscina starts another when an attach task finds every worker attached (the
      // active set grew), up to --workers. An idle daemon holds one request worker's memory, not N.
      minThreads: 1,
      maxThreads: this.maxWorkers,
      // Calls are I/O bound and SSE streams live long: 256 per worker plus piscina's 'auto' queue (threads²)
      // refused the 517th concurrent stream on 2 workers as `internal` (bench: 1,000 open streams).
      concurrentTasksPerWorker: this.maxCallsPerWorker,
      loadBalancer: balancer,
      // Tasks are async and talk over MessagePorts: the default 'sync' Atomics.wait would block the
      // worker's event loop between tasks and starve those ports.
      atomics: 'disabled',
      maxQueue: 'auto',
      // A started worker stays (its slot is its identity here). Infinity, not a large number: piscina
      // hands a finite value to setTimeout, which turns anything above 2^31-1 ms into 1 ms.
      idleTimeout: Infinity,
      workerData,
      // Request workers get an EMPTY environment: a key in AIVAULT_KEY (env provider) must not be
      // readable there. Everything they need arrives in workerData.
      env: {},
      resourceLimits: workerResourceLimits(),
    });
    this.piscina.on('workerDestroy', (w: { id: number }) => {
      // Deferred: piscina emits this while the worker is still in its list; a new attach task must not be
      // balanced onto it.
      setImmediate(() => {
        this.attached.delete(w.id);
        const slot = this.slots.find((x) => x.threadId === w.id);
        if (slot) this.slotDied(slot);
      });
    });
    // A worker's uncaught error with no piscina task running is reported here; the worker is replaced
    // (workerDestroy above). Without a listener it would throw on the main thread.
    this.piscina.on('error', () => undefined);
    this.addSlot(FIRST_WORKER_REGION);
    const measure = opts.spread?.measure ?? createLoadMeter();
    this.spreadTimer = setInterval(() => {
      if (this.started === 0 && this.spread.active === 1) return;
      this.started = 0;
      const sample = measure(this.activeWorkers());
      if (!sample) return;
      this.spread = nextSpread(this.spread, this.maxWorkers, sample);
      while (this.liveSlots() < this.spread.active) this.addSlot(this.freeRegion());
    }, opts.spread?.intervalMs ?? SPREAD_WINDOW_MS);
    this.spreadTimer.unref();
  }

  /** The first worker region of the metrics buffer no live slot holds. */
  private freeRegion(): number {
    for (let r = FIRST_WORKER_REGION; ; r++) {
      if (!this.slots.some((s) => s.metricsRegion === r)) return r;
    }
  }

  private liveSlots(): number {
    return this.slots.length;
  }

  /** The Worker objects behind the active slots (those attached so far). */
  private activeWorkers(): Worker[] {
    const out: Worker[] = [];
    const threads = this.piscina.threads;
    let k = this.spread.active;
    for (const s of this.slots) {
      if (k-- <= 0) break;
      const w = threads.find((t) => t.threadId === s.threadId);
      if (w) out.push(w);
    }
    return out;
  }

  /** How many workers take new calls now (1..live workers). */
  activeCount(): number {
    return Math.min(this.spread.active, Math.max(1, this.liveSlots()));
  }

  /** Calls in flight per live worker, in dispatch order (tests, diagnostics). */
  callsPerWorker(): number[] {
    return this.slots.map((s) => s.calls.size);
  }

  /** Live workers that have started and taken their call port. */
  readyCount(): number {
    return this.slots.filter((s) => s.threadId !== undefined).length;
  }

  /** A call port for one (current or future) worker: an attach task waits in piscina's queue for it. */
  private addSlot(metricsRegion: number): Slot {
    const { port1, port2 } = new MessageChannel();
    const slot: Slot = {
      port: port1,
      // A start the port refused fails its call at once (nothing else would ever answer it).
      out: new PortOutbox(port1, 'immediate', (msg) => failUnsent(slot, msg as MainToWorkerPort)),
      calls: new Map(),
      dead: false,
      metricsRegion,
      returning: [],
    };
    this.slots.push(slot);
    const onMessage = (msg: WorkerPortToMain): void => {
      if (msg.t === 'need-crypto') {
        this.handOverCryptoPort(port1);
        return;
      }
      if (msg.t === 'closed') {
        slot.onClosed?.();
        return;
      }
      const call = slot.calls.get(msg.id);
      if (!call) return; // finished or failed on this side already
      if (msg.t === 'approval') {
        call.awaitApproval(this.approvals, msg.request);
        return;
      }
      if (msg.t === 'end' || msg.t === 'full' || msg.t === 'error') {
        slot.calls.delete(msg.id);
        call.onMessage(msg);
        call.finish();
      } else call.onMessage(msg);
    };
    port1.on('message', (data: WorkerPortToMain | WorkerPortToMain[]) => eachMessage(data, onMessage));
    // The worker's end of the port is closed when its thread stops (crash, terminate).
    port1.on('close', () => this.slotDied(slot));
    // Idle slots must not keep the process alive (like idle piscina workers); a call refs its slot.
    port1.unref();
    const task: AttachTask = { kind: 'attach', port: port2, metricsRegion };
    this.piscina.run(task, { name: ATTACH, transferList: [port2] }).then(
      (threadId: number) => {
        slot.threadId = threadId;
      },
      () => this.slotDied(slot),
    );
    return slot;
  }

  /** The worker behind `slot` stopped: fail its in-flight calls and attach a new slot (unless closing). */
  private slotDied(slot: Slot): void {
    if (slot.dead) return;
    slot.dead = true;
    slot.onClosed?.();
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    slot.port.close();
    const calls = [...slot.calls.values()];
    slot.calls.clear();
    for (const call of calls) {
      call.onMessage({
        t: 'error',
        id: 0,
        error: { error: 'internal', message: 'request worker failed: its thread stopped during the call' },
      });
      call.finish();
    }
    // Its in-flight and open-stream gauges died with it; its counters stay (they never go back).
    new MetricsReader(this.metrics).resetGauges(slot.metricsRegion);
    if (!this.closing) this.addSlot(slot.metricsRegion);
  }

  /**
   * The slot for a new call: the active slot with the fewest calls in flight; when every active slot is at
   * its limit, any live slot with room (the active set saves CPU, it never refuses a call).
   */
  pickSlot(): Slot {
    this.started++;
    let best: Slot | undefined;
    let first: Slot | undefined;
    let k = this.spread.active;
    for (const s of this.slots) {
      first ??= s;
      if (k-- <= 0) break;
      // A worker still starting takes calls only when it is the first (its port queues them meanwhile).
      if (s.threadId === undefined && s !== first) continue;
      if (!best || s.calls.size < best.calls.size) best = s;
    }
    if (best && best.calls.size < this.maxCallsPerWorker) return best;
    // The active workers are full: any live worker with room, else one more worker (its port queues the
    // call until it has started), else the daemon is at capacity.
    for (const s of this.slots) {
      if (!best || s.calls.size < best.calls.size) best = s;
    }
    if ((!best || best.calls.size >= this.maxCallsPerWorker) && this.liveSlots() < this.maxWorkers) {
      best = this.addSlot(this.freeRegion());
    }
    if (!best || best.calls.size >= this.maxCallsPerWorker) {
      throw new AivaultError(
        'daemon_busy',
        `aivaultd is at its limit of ${this.maxCallsPerWorker} concurrent calls per request worker`,
      );
    }
    return best;
  }

  /** Shutdown began: workers that stop from now on are not replaced. */
  stopReplacing(): void {
    this.closing = true;
    clearInterval(this.spreadTimer);
  }

  /** Tell every request worker to drop the values it keeps beyond a call (after a lock). */
  forgetKeptValues(): void {
    for (const slot of this.slots) slot.out.postMessage({ t: 'forget' } satisfies MainToWorkerPort);
  }

  /**
   * Let every request worker release its pipeline (audit day file, upstream pools) before it stops: `close`
   * on each slot, answered by `closed`, waited for up to `deadlineMs`; then the slots' ports are closed.
   */
  async closeSlots(deadlineMs: number): Promise<void> {
    await Promise.race([
      Promise.all(
        this.slots.map(
          (slot) =>
            new Promise<void>((resolve) => {
              slot.onClosed = resolve;
              slot.port.ref();
              slot.out.postMessage({ t: 'close' } satisfies MainToWorkerPort);
            }),
        ),
      ),
      new Promise((r) => setTimeout(r, deadlineMs).unref()),
    ]);
    for (const slot of this.slots) slot.port.close();
  }
}

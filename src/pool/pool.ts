/**
 * Thread topology of aivaultd: a piscina pool of request workers plus exactly one crypto worker, created
 * here on the main thread. Each request worker gets its own MessageChannel to the crypto worker (handed
 * over lazily on its first call; the port carries RPC only, never key material). The main thread does no
 * crypto and no policy: it starts calls, relays their messages and grants stream credits (src/front/
 * relay.ts). A call's request travels as its transport received it (CallRequest: its bytes transferred,
 * never re-encoded here), and a call is one PoolCall object on this side.
 *
 * Dispatch: piscina owns the request workers' lifecycle (start, replace a dead one, destroy), but calls do
 * not go through its task queue. Each worker runs one `attach` task that takes one end of a long-lived
 * MessageChannel (a "slot"); invocations are started, credited, cancelled and answered on that port,
 * multiplexed by call id (src/core/threads/call-port.ts). That replaced a piscina task + a new MessageChannel
 * per call (bench/PROFILE.md). A custom piscina balancer gives every worker exactly one attach task. When a
 * worker dies (its port closes, or piscina reports `workerDestroy`), its in-flight calls fail with
 * `internal` ("request worker failed") and a new slot is attached to the worker piscina starts in its
 * place. WebSocket relays still run as one piscina task each (with their own port).
 */
import type { CommandJob } from '../crypto-worker/operator-executor.js';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { Config } from '../core/config/env.js';
import { AivaultError, fromWire, type WireError } from '../core/errors.js';
import type { RequestContext } from '../core/broker/types.js';
import { createRateLimitBuffer } from '../core/threads/rate-limit.js';
import {
  callTransferList,
  type CallMessage,
  type CallRequest,
  type CallStart,
  type MainToWorker,
  type MainToWorkerPort,
  type WorkerPortToMain,
  type WorkerToMain,
} from '../core/threads/call-port.js';
import { toWorkerConfig, type ControlReply, type ControlRequest } from '../core/threads/crypto-protocol.js';
import { workerEntry } from './worker-files.js';
import type { PolicySealState } from '../stores/vault/policy-seal.js';
import { cryptoWorkerResourceLimits, workerResourceLimits } from './worker-limits.js';
import { ApprovalStore, type ApprovalRequest } from '../front/approvals.js';
import { Generation } from '../core/threads/generation.js';
import {
  createMetricsBuffer,
  FIRST_WORKER_REGION,
  MetricsReader,
  type Transport,
} from '../core/threads/metrics-buffer.js';
import type { WsMainToWorker, WsTask, WsWorkerToMain } from '../core/threads/ws-protocol.js';

/** One call as a transport hands it over (see CallRequest for the request forms). */
export type InvokeTask = CallRequest & {
  context: RequestContext;
  stream: boolean;
  timeoutMs?: number;
  /** Which listener took the call (metrics label; src/core/threads/metrics-buffer.ts). */
  transport?: Transport;
};

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
interface Slot {
  readonly port: MessagePort;
  readonly calls: Map<number, LiveCall>;
  /** The worker's threadId once its attach task answered. */
  threadId?: number;
  dead: boolean;
  /** Shutdown: resolves when the worker answered `closed`. */
  onClosed?: () => void;
  /** The worker's region of the metrics buffer. */
  readonly metricsRegion: number;
}

interface LiveCall {
  onMessage(msg: CallMessage): void;
  finish(): void;
  awaitApproval(store: ApprovalStore, request: ApprovalRequest): void;
}

const ATTACH = 'attach';

type LoadBalancer = NonNullable<NonNullable<ConstructorParameters<typeof Piscina>[0]>['loadBalancer']>;

export interface RequestWorkerData {
  config: ReturnType<typeof toWorkerConfig>;
  rateLimit: SharedArrayBuffer;
  /** The vault generation (src/core/threads/generation.ts). */
  generation: SharedArrayBuffer;
  /** Counters and timings for /metrics (src/core/threads/metrics-buffer.ts). */
  metrics: SharedArrayBuffer;
}

export interface CallHandlers {
  /** Every non-control message from the worker (head/chunk/end/full/error). */
  onMessage(msg: Exclude<WorkerToMain, { t: 'need-crypto' }>): void;
  /**
   * The call started (true) or stopped (false) waiting for an operator's approval. A transport that
   * limits calls per connection does not count a waiting call, so waiting calls do not starve others.
   */
  onApprovalWait?(waiting: boolean): void;
}

export interface CallHandle {
  grant(n: number): void;
  abort(): void;
  /** Settles when the call reached a terminal message (end/full/error). */
  readonly done: Promise<void>;
}

export interface PoolOptions {
  readonly workers?: number;
  /** Concurrent calls per request worker (they are I/O bound). */
  readonly concurrentTasksPerWorker?: number;
  readonly rateLimitSlots?: number;
  /** How long a call waits for an operator's approval (default 60 s). */
  readonly approvalTimeoutMs?: number;
}

/**
 * One call in flight, main side: its handle (grant/abort), its entry in the slot's call map and in the
 * pool's set, in one object. `done` is made only when asked for (graceful close), not per call.
 */
class PoolCall implements CallHandle, LiveCall {
  private terminal = false;
  private settle: (() => void) | undefined;
  private settled: Promise<void> | undefined;
  /** Aborted when the call ends while it waits for approval: its pending entry is removed. */
  private approval: AbortController | undefined;

  constructor(
    readonly id: number,
    private readonly slot: Slot,
    private readonly handlers: CallHandlers,
    private readonly registry: Set<CallHandle>,
  ) {}

  /** The worker asks whether the operator approves this call; the outcome goes back on the port. */
  awaitApproval(store: ApprovalStore, request: ApprovalRequest): void {
    if (this.terminal || this.approval) return;
    const ac = new AbortController();
    this.approval = ac;
    this.handlers.onApprovalWait?.(true);
    void store.request(request, ac.signal).then((outcome) => {
      this.approval = undefined;
      if (this.terminal) return;
      this.handlers.onApprovalWait?.(false);
      this.slot.port.postMessage({ t: 'approval', id: this.id, outcome } satisfies MainToWorkerPort);
    });
  }

  grant(n: number): void {
    if (!this.terminal)
      this.slot.port.postMessage({ t: 'credit', id: this.id, n } satisfies MainToWorkerPort);
  }

  abort(): void {
    if (this.terminal) return;
    this.slot.port.postMessage({ t: 'abort', id: this.id } satisfies MainToWorkerPort);
    this.approval?.abort();
  }

  get done(): Promise<void> {
    if (this.terminal) return Promise.resolve();
    return (this.settled ??= new Promise<void>((r) => (this.settle = r)));
  }

  onMessage(msg: CallMessage): void {
    if (!this.terminal) this.handlers.onMessage(msg);
  }

  finish(): void {
    if (this.terminal) return;
    this.terminal = true;
    this.approval?.abort();
    this.registry.delete(this);
    if (this.slot.calls.size === 0) this.slot.port.unref();
    this.settle?.();
  }
}

export class DaemonPool {
  readonly piscina: Piscina;
  private crypto: Worker;
  /** The shared rate-limit table (read by the dashboard; written by request workers). */
  readonly rateLimit: SharedArrayBuffer;
  /** The vault generation every thread's caches are keyed on (bumped by writers and the vault watcher). */
  readonly generation = new Generation();
  /** Calls waiting for an operator's approval (capability policy `approval`), on this thread. */
  readonly approvals: ApprovalStore;
  /** Every thread's counters and timings, read by /metrics (src/core/threads/metrics-buffer.ts). */
  readonly metrics: SharedArrayBuffer;
  private readonly control = new Map<number, (r: ControlReply) => void>();
  private nextRid = 1;
  private closed = false;
  private readonly calls = new Set<CallHandle>();
  private readonly slots: Slot[] = [];
  /** threadIds of workers that have taken an attach task (maintained by the balancer). */
  private readonly attached = new Set<number>();
  private readonly maxCallsPerWorker: number;
  private nextCallId = 1;

  constructor(config: Config, opts: PoolOptions = {}) {
    this.rateLimit = createRateLimitBuffer(opts.rateLimitSlots);
    this.approvals = new ApprovalStore(
      opts.approvalTimeoutMs !== undefined ? { timeoutMs: opts.approvalTimeoutMs } : {},
    );
    const threads = opts.workers ?? config.requestWorkers;
    this.metrics = createMetricsBuffer(threads);
    this.crypto = this.spawnCrypto(config);
    const entry = workerEntry('request-worker');
    const workerData: RequestWorkerData & Record<string, unknown> = {
      ...entry.bootData,
      config: toWorkerConfig(config),
      rateLimit: this.rateLimit,
      generation: this.generation.buffer,
      metrics: this.metrics,
    };
    this.maxCallsPerWorker = opts.concurrentTasksPerWorker ?? 4096;
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
      minThreads: threads,
      maxThreads: threads,
      // Calls are I/O bound and SSE streams live long: 256 per worker plus piscina's 'auto' queue (threads²)
      // refused the 517th concurrent stream on 2 workers as `internal` (bench: 1,000 open streams).
      concurrentTasksPerWorker: this.maxCallsPerWorker,
      loadBalancer: balancer,
      // Tasks are async and talk over MessagePorts: the default 'sync' Atomics.wait would block the
      // worker's event loop between tasks and starve those ports.
      atomics: 'disabled',
      maxQueue: 'auto',
      idleTimeout: Number.MAX_SAFE_INTEGER,
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
    for (let i = 0; i < threads; i++) this.addSlot(FIRST_WORKER_REGION + i);
  }

  /** The shared rate-limit table (read-only use on this thread: rate-limit headroom for /metrics). */
  get rateLimitBuffer(): SharedArrayBuffer {
    return this.rateLimit;
  }

  /** A call port for one (current or future) worker: an attach task waits in piscina's queue for it. */
  private addSlot(metricsRegion: number): void {
    const { port1, port2 } = new MessageChannel();
    const slot: Slot = { port: port1, calls: new Map(), dead: false, metricsRegion };
    this.slots.push(slot);
    port1.on('message', (msg: WorkerPortToMain) => {
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
    });
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
  }

  /** A request worker asked for its private channel to the crypto worker: one end to each. */
  private handOverCryptoPort(workerPort: MessagePort): void {
    const ch = new MessageChannel();
    this.crypto.postMessage({ op: 'attach', port: ch.port2 } satisfies ControlRequest, [ch.port2]);
    workerPort.postMessage({ t: 'crypto-port', port: ch.port1 } satisfies MainToWorker, [ch.port1]);
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
    if (!this.closed) this.addSlot(slot.metricsRegion);
  }

  /** The live slot with the fewest calls in flight. */
  private pickSlot(): Slot {
    let best: Slot | undefined;
    for (const s of this.slots) {
      if (!s.dead && (!best || s.calls.size < best.calls.size)) best = s;
    }
    if (!best || best.calls.size >= this.maxCallsPerWorker) {
      throw new AivaultError(
        'daemon_busy',
        `aivaultd is at its limit of ${this.maxCallsPerWorker} concurrent calls per request worker`,
      );
    }
    return best;
  }

  /**
   * Start one invocation in a request worker. The call is one object (PoolCall) on this side; the request's
   * bytes are transferred, not copied.
   */
  startCall(task: InvokeTask, handlers: CallHandlers): CallHandle {
    if (this.closed) throw new AivaultError('daemon_unavailable', 'aivaultd is shutting down');
    const slot = this.pickSlot();
    const call = new PoolCall(this.nextCallId++, slot, handlers, this.calls);
    slot.calls.set(call.id, call);
    if (slot.calls.size === 1) slot.port.ref();
    this.calls.add(call);
    const start = { ...task, t: 'call', id: call.id } as CallStart;
    slot.port.postMessage(start, callTransferList(task));
    return call;
  }

  /** Start a WebSocket relay (`GET /aivault/ws`) in a request worker; see http-ws-protocol.ts. */
  startWs(
    task: Omit<WsTask, 'port' | 'kind'>,
    onMessage: (msg: Exclude<WsWorkerToMain, { t: 'need-crypto' | 'approval' }>) => void,
  ): CallHandle & { post(msg: WsMainToWorker, transfer?: ArrayBuffer[]): void } {
    /** Set while the relay waits for an operator's approval; aborted when the relay ends first. */
    let approval: AbortController | undefined;
    const h = this.launch<WsWorkerToMain>(
      (port) => ({ kind: 'ws', ...task, port }) satisfies WsTask,
      (msg) => {
        if (msg.t === 'approval') {
          if (approval) return;
          const ac = (approval = new AbortController());
          void this.approvals.request(msg.request, ac.signal).then((outcome) => {
            approval = undefined;
            h.post({ t: 'approval', outcome });
          });
          return;
        }
        onMessage(msg as Exclude<WsWorkerToMain, { t: 'need-crypto' | 'approval' }>);
      },
      (msg) => msg.t === 'ws-close' || msg.t === 'error',
    );
    void h.done.then(() => approval?.abort());
    return {
      grant: (n) => h.post({ t: 'credit', n }),
      abort: () => {
        approval?.abort();
        h.post({ t: 'abort' });
      },
      done: h.done,
      post: (msg, transfer = []) => h.post(msg, transfer),
    };
  }

  /** A piscina task with its own MessagePort (WebSocket relays). */
  private launch<W extends { t: string }>(
    makeTask: (port: MessagePort) => WsTask,
    onMessage: (msg: W) => void,
    isTerminal: (msg: W) => boolean,
  ): {
    post(msg: MainToWorker | WsMainToWorker, transfer?: (MessagePort | ArrayBuffer)[]): void;
    done: Promise<void>;
  } {
    if (this.closed) throw new AivaultError('daemon_unavailable', 'aivaultd is shutting down');
    const { port1, port2 } = new MessageChannel();
    let terminal = false;
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => (resolveDone = r));
    const finish = (): void => {
      if (terminal) return;
      terminal = true;
      port1.close();
      this.calls.delete(handle);
      resolveDone();
    };
    const post = (msg: MainToWorker | WsMainToWorker, transfer: (MessagePort | ArrayBuffer)[] = []): void => {
      if (!terminal) port1.postMessage(msg, transfer);
    };
    port1.on('message', (msg: W) => {
      if (terminal) return;
      if (msg.t === 'need-crypto') {
        // Not gated on `terminal`: the worker keeps this port for all its later calls.
        this.handOverCryptoPort(port1);
        return;
      }
      onMessage(msg);
      if (isTerminal(msg)) finish();
    });
    const full = makeTask(port2);
    this.piscina.run(full, { transferList: [port2] }).then(
      () => undefined,
      () => {
        if (terminal) return;
        onMessage({
          t: 'error',
          error: { error: 'internal', message: 'request worker failed' },
        } as unknown as W);
        finish();
      },
    );
    const handle: CallHandle = {
      grant: (n) => post({ t: 'credit', n }),
      abort: () => post({ t: 'abort' }),
      done,
    };
    this.calls.add(handle);
    return { post, done };
  }

  get inflight(): number {
    return this.calls.size;
  }

  /**
   * Start the crypto worker. If it dies (crash, OOM, terminate) outside shutdown, pending operator calls
   * fail with vault_unavailable, request workers' ports close (their calls fail fast, never hang) and a
   * fresh crypto worker takes over; a passphrase vault is then locked again until `aivault unlock`.
   */
  private spawnCrypto(config: Config): Worker {
    const cryptoEntry = workerEntry('crypto-worker');
    const worker = new Worker(cryptoEntry.filename, {
      workerData: {
        ...cryptoEntry.bootData,
        config: toWorkerConfig(config),
        generation: this.generation.buffer,
        metrics: this.metrics,
      },
      resourceLimits: cryptoWorkerResourceLimits(),
      // The crypto worker keeps the real environment: the env key provider reads its variable there.
    });
    worker.on('message', (r: ControlReply) => {
      const cb = this.control.get(r.rid);
      this.control.delete(r.rid);
      cb?.(r);
    });
    const failPending = (): void => {
      for (const cb of this.control.values()) {
        cb({ rid: 0, ok: false, error: { error: 'vault_unavailable', message: 'crypto worker failed' } });
      }
      this.control.clear();
    };
    worker.on('error', failPending);
    worker.on('exit', () => {
      // A fresh crypto worker starts locked (passphrase vault): request workers must drop what they cached.
      this.generation.bump();
      failPending();
      if (!this.closed && this.crypto === worker) this.crypto = this.spawnCrypto(config);
    });
    return worker;
  }

  /** The audit-log sealing subkey, for the main thread's own audit lines (never the KEK). */
  async auditKey(): Promise<Uint8Array> {
    const data = await this.operator('audit-key');
    return Buffer.from(String(data.auditKey), 'base64');
  }

  /** The verified policy-seal state for the main thread's policy reads and writes (never the KEK). */
  async policySeal(): Promise<PolicySealState> {
    const d = await this.operator('policy-seal');
    if (d.sealed !== true) return { sealed: false };
    return {
      sealed: true,
      vaultId: String(d.vaultId),
      kid: String(d.kid),
      key: new Uint8Array(Buffer.from(String(d.key), 'base64')),
    };
  }

  /** Called after every successful unlock (e.g. the HTTPS proxy creates its CA then). */
  readonly onUnlocked = new Set<() => void>();
  /** Called after every successful lock (the HTTPS proxy closes its tunnels and forgets its CA key). */
  readonly onLocked = new Set<() => void>();

  /** Forward an operator frame to the crypto worker. */
  operator(
    op: 'unlock' | 'lock' | 'status' | 'audit-key' | 'policy-seal' | 'verify-passphrase',
    passphrase?: string,
  ): Promise<Record<string, string | number | boolean | null>> {
    const rid = this.nextRid++;
    const msg: ControlRequest =
      op === 'unlock' || op === 'verify-passphrase' ? { rid, op, passphrase: passphrase ?? '' } : { rid, op };
    return new Promise((resolve, reject) => {
      this.control.set(rid, (r) => {
        if (!r.ok) return reject(fromWire(r.error as WireError));
        if (op === 'unlock') for (const f of this.onUnlocked) f();
        if (op === 'lock') {
          // Locked: nothing waits for an operator any more, and no `once` approval outlives the lock.
          this.approvals.denyAll('lock');
          this.approvals.forgetAll();
        }
        if (op === 'lock') for (const f of this.onLocked) f();
        // The status frame also reports the vault generation and every thread's cache hits/misses.
        resolve(op === 'status' ? { ...r.data, ...this.generation.stats() } : r.data);
      });
      this.crypto.postMessage(msg);
    });
  }

  /** Run a CLI command in the crypto worker (the executor gates it by `job.role`). */
  command(job: CommandJob): Promise<Record<string, string | number | boolean | null>> {
    const rid = this.nextRid++;
    return new Promise((resolve, reject) => {
      this.control.set(rid, (r) => (r.ok ? resolve(r.data) : reject(fromWire(r.error as WireError))));
      this.crypto.postMessage({ rid, op: 'command', ...job } satisfies ControlRequest);
    });
  }

  /**
   * Graceful close: refuse new calls, wait for in-flight ones up to `deadlineMs`, abort the rest, zero the
   * KEK in the crypto worker, stop all threads.
   */
  async close(deadlineMs = 10_000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.approvals.denyAll('shutdown');
    const pending = [...this.calls];
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), deadlineMs).unref());
    const all = Promise.all(pending.map((c) => c.done)).then(() => 'done' as const);
    if ((await Promise.race([all, timer])) === 'timeout') {
      for (const c of this.calls) c.abort();
      await Promise.race([
        Promise.all([...this.calls].map((c) => c.done)),
        new Promise((r) => setTimeout(r, 1000).unref()),
      ]);
    }
    // Let every request worker release its pipeline (audit day file, upstream pools) before it stops.
    await Promise.race([
      Promise.all(
        this.slots.map(
          (slot) =>
            new Promise<void>((resolve) => {
              slot.onClosed = resolve;
              slot.port.ref();
              slot.port.postMessage({ t: 'close' } satisfies MainToWorkerPort);
            }),
        ),
      ),
      new Promise((r) => setTimeout(r, 2000).unref()),
    ]);
    for (const slot of this.slots) slot.port.close();
    const rid = this.nextRid++;
    await Promise.race([
      new Promise<void>((resolve) => {
        this.control.set(rid, () => resolve());
        this.crypto.postMessage({ rid, op: 'shutdown' } satisfies ControlRequest);
      }),
      new Promise((r) => setTimeout(r, 2000).unref()),
    ]);
    await this.piscina.destroy();
    await this.crypto.terminate();
  }
}

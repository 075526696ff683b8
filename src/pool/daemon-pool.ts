/**
 * The DaemonPool facade, on aivaultd's main thread: it starts the threads (the request workers,
 * src/pool/request-workers.ts, and exactly one crypto worker, started and supervised here), dispatches calls
 * and WebSocket relays to request workers, forwards operator frames and CLI commands to the crypto worker,
 * and shuts everything down. Each request worker gets its own MessageChannel to the crypto worker (handed
 * over lazily on its first call; the port carries RPC only, never key material). The main thread does no
 * crypto and no policy: it starts calls, relays their messages and grants stream credits (src/front/
 * relay.ts). A call's request travels as its transport received it (CallRequest: its bytes transferred,
 * never re-encoded here), and a call is one PoolCall object on this side (src/pool/pool-call.ts).
 */
import type { CommandJob } from '../crypto-worker/operator-executor.js';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { Piscina } from 'piscina';
import type { Config } from '../core/config/env.js';
import { AivaultError, fromWire, type WireError } from '../core/errors.js';
import { createRateLimitBuffer } from '../core/threads/rate-limit.js';
import { callTransferList, type CallStart, type MainToWorker } from '../core/threads/call-port.js';
import { toWorkerConfig, type ControlReply, type ControlRequest } from '../core/threads/crypto-protocol.js';
import { workerEntry } from './worker-files.js';
import type { PolicySealState } from '../stores/vault/policy-seal.js';
import { cryptoWorkerResourceLimits } from './worker-limits.js';
import { ApprovalStore } from '../front/approvals.js';
import { Generation } from '../core/threads/generation.js';
import { createMetricsBuffer } from '../core/threads/metrics-buffer.js';
import type { WsMainToWorker, WsTask, WsWorkerToMain } from '../core/threads/ws-protocol.js';
import { PoolCall, type CallHandle, type CallHandlers, type InvokeTask } from './pool-call.js';
import { RequestWorkers, type RequestWorkersOptions } from './request-workers.js';

export interface PoolOptions {
  readonly workers?: number;
  /** Concurrent calls per request worker (they are I/O bound). */
  readonly concurrentTasksPerWorker?: number;
  readonly rateLimitSlots?: number;
  /** How long a call waits for an operator's approval (default 60 s). */
  readonly approvalTimeoutMs?: number;
  /** Tests only: the request workers' active-set window and measurement (src/pool/worker-spread.ts). */
  readonly workerSpread?: RequestWorkersOptions['spread'];
}

export class DaemonPool {
  /** The request workers' piscina (RequestWorkers owns it; tests read its threads and options). */
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
  private readonly workers: RequestWorkers;
  private nextCallId = 1;

  constructor(config: Config, opts: PoolOptions = {}) {
    this.rateLimit = createRateLimitBuffer(opts.rateLimitSlots);
    this.approvals = new ApprovalStore(
      opts.approvalTimeoutMs !== undefined ? { timeoutMs: opts.approvalTimeoutMs } : {},
    );
    const threads = opts.workers ?? config.requestWorkers;
    this.metrics = createMetricsBuffer(threads);
    this.crypto = this.spawnCrypto(config);
    this.workers = new RequestWorkers({
      threads,
      maxCallsPerWorker: opts.concurrentTasksPerWorker ?? 4096,
      workerData: {
        config: toWorkerConfig(config),
        rateLimit: this.rateLimit,
        generation: this.generation.buffer,
        metrics: this.metrics,
      },
      approvals: this.approvals,
      handOverCryptoPort: (workerPort) => this.handOverCryptoPort(workerPort),
      ...(opts.workerSpread ? { spread: opts.workerSpread } : {}),
    });
    this.piscina = this.workers.piscina;
  }

  /**
   * Request workers taking new calls now, those started and ready, and calls in flight per live worker
   * (src/pool/worker-spread.ts).
   */
  workerSpread(): { active: number; ready: number; calls: number[] } {
    return {
      active: this.workers.activeCount(),
      ready: this.workers.readyCount(),
      calls: this.workers.callsPerWorker(),
    };
  }

  /** The shared rate-limit table (read-only use on this thread: rate-limit headroom for /metrics). */
  get rateLimitBuffer(): SharedArrayBuffer {
    return this.rateLimit;
  }

  /** A request worker asked for its private channel to the crypto worker: one end to each. */
  private handOverCryptoPort(workerPort: MessagePort): void {
    const ch = new MessageChannel();
    this.crypto.postMessage({ op: 'attach', port: ch.port2 } satisfies ControlRequest, [ch.port2]);
    workerPort.postMessage({ t: 'crypto-port', port: ch.port1 } satisfies MainToWorker, [ch.port1]);
  }

  /**
   * Start one invocation in a request worker. The call is one object (PoolCall) on this side; the request's
   * bytes are transferred, not copied.
   */
  startCall(task: InvokeTask, handlers: CallHandlers): CallHandle {
    if (this.closed) throw new AivaultError('daemon_unavailable', 'aivaultd is shutting down');
    const slot = this.workers.pickSlot();
    const call = new PoolCall(this.nextCallId++, slot, handlers, this.calls);
    slot.calls.set(call.id, call);
    if (slot.calls.size === 1) slot.port.ref();
    this.calls.add(call);
    const start = { ...task, t: 'call', id: call.id } as CallStart;
    slot.out.postMessage(start, callTransferList(task));
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
      if (this.closed || this.crypto !== worker) return;
      // The keys this worker held are gone: everything a lock ends ends now too (pending approvals,
      // remembered `once` approvals, dashboard sessions, HTTPS-proxy tunnels and its CA key), even when
      // the fresh worker unlocks itself again (file or env key).
      this.afterLock();
      this.crypto = this.spawnCrypto(config);
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

  /** The vault was locked (or its crypto worker died): nothing waits for an operator any more, no `once`
   * approval outlives the lock, and every onLocked listener runs. */
  private afterLock(): void {
    this.approvals.denyAll('lock');
    this.approvals.forgetAll();
    // The workers would drop their kept values at the next call (a new generation) or on their idle timers;
    // after a lock no call comes, so they are told now (docs/security.md).
    this.workers.forgetKeptValues();
    for (const f of this.onLocked) f();
  }

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
        if (op === 'lock') this.afterLock();
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
    this.workers.stopReplacing();
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
    await this.workers.closeSlots(2000);
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

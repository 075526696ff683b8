/**
 * Thread topology of aivaultd: a piscina pool of request workers plus exactly one crypto worker, created
 * here on the main thread. Each request worker gets its own MessageChannel to the crypto worker (handed
 * over lazily on its first call; the port carries RPC only, never key material). The main thread does no
 * crypto and no policy: it starts calls, relays their messages and grants stream credits.
 */
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { Config } from '../config/env.js';
import { AivaultError, fromWire, type WireError } from '../errors.js';
import type { Envelope, RequestContext } from '../broker/types.js';
import { createRateLimitBuffer } from '../pipeline/rate-limit.js';
import type { MainToWorker, WorkerToMain } from '../pipeline/call-port.js';
import { toWorkerConfig, type ControlReply, type ControlRequest } from './crypto-protocol.js';
import { workerEntry } from './worker-files.js';
import type { WsMainToWorker, WsTask, WsWorkerToMain } from './http-ws-protocol.js';

export interface InvokeTask {
  kind: 'invoke';
  envelope: Envelope;
  context: RequestContext;
  stream: boolean;
  timeoutMs?: number;
  port: MessagePort;
}

export interface RequestWorkerData {
  config: ReturnType<typeof toWorkerConfig>;
  rateLimit: SharedArrayBuffer;
}

export interface CallHandlers {
  /** Every non-control message from the worker (head/chunk/end/full/error). */
  onMessage(msg: Exclude<WorkerToMain, { t: 'need-crypto' }>): void;
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
}

export class DaemonPool {
  readonly piscina: Piscina;
  private crypto: Worker;
  private readonly rateLimit: SharedArrayBuffer;
  private readonly control = new Map<number, (r: ControlReply) => void>();
  private nextRid = 1;
  private closed = false;
  private readonly calls = new Set<CallHandle>();

  constructor(config: Config, opts: PoolOptions = {}) {
    this.rateLimit = createRateLimitBuffer(opts.rateLimitSlots);
    this.crypto = this.spawnCrypto(config);
    const entry = workerEntry('request-worker');
    const workerData: RequestWorkerData & Record<string, unknown> = {
      ...entry.bootData,
      config: toWorkerConfig(config),
      rateLimit: this.rateLimit,
    };
    const threads = opts.workers ?? config.requestWorkers;
    this.piscina = new Piscina({
      filename: entry.filename,
      minThreads: threads,
      maxThreads: threads,
      // Calls are I/O bound and SSE streams live long: 256 per worker plus piscina's 'auto' queue (threads²)
      // refused the 517th concurrent stream on 2 workers as `internal` (bench: 1,000 open streams).
      concurrentTasksPerWorker: opts.concurrentTasksPerWorker ?? 4096,
      // Tasks are async and talk over MessagePorts: the default 'sync' Atomics.wait would block the
      // worker's event loop between tasks and starve those ports.
      atomics: 'disabled',
      maxQueue: 'auto',
      idleTimeout: Number.MAX_SAFE_INTEGER,
      workerData,
      // Request workers get an EMPTY environment: a key in AIVAULT_KEY (env provider) must not be
      // readable there. Everything they need arrives in workerData.
      env: {},
    });
  }

  /** Start one invocation in a request worker. */
  startCall(task: Omit<InvokeTask, 'port' | 'kind'>, handlers: CallHandlers): CallHandle {
    const h = this.launch<WorkerToMain>(
      (port) => ({ kind: 'invoke', ...task, port }) satisfies InvokeTask,
      (msg) => handlers.onMessage(msg as Exclude<WorkerToMain, { t: 'need-crypto' }>),
      (msg) => msg.t === 'end' || msg.t === 'full' || msg.t === 'error',
    );
    return { grant: (n) => h.post({ t: 'credit', n }), abort: () => h.post({ t: 'abort' }), done: h.done };
  }

  /** Start a WebSocket relay (`GET /aivault/ws`) in a request worker; see http-ws-protocol.ts. */
  startWs(
    task: Omit<WsTask, 'port' | 'kind'>,
    onMessage: (msg: Exclude<WsWorkerToMain, { t: 'need-crypto' }>) => void,
  ): CallHandle & { post(msg: WsMainToWorker, transfer?: ArrayBuffer[]): void } {
    const h = this.launch<WsWorkerToMain>(
      (port) => ({ kind: 'ws', ...task, port }) satisfies WsTask,
      (msg) => onMessage(msg as Exclude<WsWorkerToMain, { t: 'need-crypto' }>),
      (msg) => msg.t === 'ws-close' || msg.t === 'error',
    );
    return {
      grant: (n) => h.post({ t: 'credit', n }),
      abort: () => h.post({ t: 'abort' }),
      done: h.done,
      post: (msg, transfer = []) => h.post(msg, transfer),
    };
  }

  private launch<W extends { t: string }>(
    makeTask: (port: MessagePort) => InvokeTask | WsTask,
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
        const ch = new MessageChannel();
        this.crypto.postMessage({ op: 'attach', port: ch.port2 } satisfies ControlRequest, [ch.port2]);
        // Not gated on `terminal`: the worker keeps this port for all its later calls.
        port1.postMessage({ t: 'crypto-port', port: ch.port1 } satisfies MainToWorker, [ch.port1]);
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
      workerData: { ...cryptoEntry.bootData, config: toWorkerConfig(config) },
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
      failPending();
      if (!this.closed && this.crypto === worker) this.crypto = this.spawnCrypto(config);
    });
    return worker;
  }

  /** Forward an operator frame to the crypto worker. */
  operator(
    op: 'unlock' | 'lock' | 'status',
    passphrase?: string,
  ): Promise<Record<string, string | number | boolean | null>> {
    const rid = this.nextRid++;
    const msg: ControlRequest = op === 'unlock' ? { rid, op, passphrase: passphrase ?? '' } : { rid, op };
    return new Promise((resolve, reject) => {
      this.control.set(rid, (r) => (r.ok ? resolve(r.data) : reject(fromWire(r.error as WireError))));
      this.crypto.postMessage(msg);
    });
  }

  /**
   * Graceful close: refuse new calls, wait for in-flight ones up to `deadlineMs`, abort the rest, zero the
   * KEK in the crypto worker, stop all threads.
   */
  async close(deadlineMs = 10_000): Promise<void> {
    if (this.closed) return;
    this.closed = true;
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

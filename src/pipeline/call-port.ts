/**
 * Messages between the daemon's main thread and a request worker on the worker's long-lived MessagePort
 * (one per worker, calls multiplexed by `id`; see src/daemon/pool.ts), and the worker-side ResponseSink with credit-based backpressure: the worker may post one chunk per credit; the
 * main thread grants credits only while the client socket drains. Chunks are copied once out of undici's
 * buffers into a fresh ArrayBuffer and then transferred (moved, not copied) across the thread boundary.
 * Carries response data only: never a secret, never a key.
 */
import type { MessagePort } from 'node:worker_threads';
import type { WireError } from '../errors.js';
import type { Envelope, HeaderList, RequestContext } from '../broker/types.js';
import type { ResponseSink } from './types.js';

/** Credits a call starts with (chunks in flight before the first grant). */
export const INITIAL_CREDITS = 4;

export type WorkerToMain =
  | { t: 'head'; status: number; headers: HeaderList }
  | { t: 'chunk'; data: ArrayBuffer }
  /** `scrubbed`: reflected secret values replaced in this response (a count, never a value). */
  | { t: 'end'; scrubbed?: number }
  | { t: 'full'; status: number; headers: HeaderList; body: ArrayBuffer; scrubbed?: number }
  | { t: 'error'; error: WireError }
  /** The worker has no port to the crypto worker yet: the main thread answers with `crypto-port`. */
  | { t: 'need-crypto' };

export type MainToWorker =
  { t: 'credit'; n: number } | { t: 'abort' } | { t: 'crypto-port'; port: MessagePort };

/** One invocation, started on a worker's port. */
export interface CallStart {
  t: 'call';
  id: number;
  envelope: Envelope;
  context: RequestContext;
  stream: boolean;
  timeoutMs?: number;
}

/** Main thread → request worker on the worker's port. */
export type MainToWorkerPort =
  | CallStart
  | { t: 'credit'; id: number; n: number }
  | { t: 'abort'; id: number }
  | { t: 'crypto-port'; port: MessagePort }
  /** Shutdown: release the pipeline (audit file, upstream pools), answer `closed`. */
  | { t: 'close' };

/** A call's message, tagged with its id. */
export type CallMessage = Exclude<WorkerToMain, { t: 'need-crypto' }> & { id: number };

/** Request worker → main thread on the worker's port. */
export type WorkerPortToMain = CallMessage | { t: 'need-crypto' } | { t: 'closed' };

/** `{scrubbed: n}` when n > 0, else nothing (the common case adds no field to the message). */
export function scrubbedField(n: number | undefined): { scrubbed?: number } {
  return n !== undefined && n > 0 ? { scrubbed: n } : {};
}

function own(data: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(data.byteLength);
  copy.set(data);
  return copy.buffer;
}

/** Worker side: a ResponseSink that posts call `id`'s messages to `port` and waits for credits. */
export function createPortSink(
  port: MessagePort,
  signal: AbortSignal,
  id: number,
): ResponseSink & { grant(n: number): void } {
  let credits = INITIAL_CREDITS;
  let waiter: (() => void) | undefined;
  const wake = (): void => {
    const w = waiter;
    waiter = undefined;
    w?.();
  };
  signal.addEventListener('abort', wake, { once: true });
  const post = (msg: CallMessage, transfer: ArrayBuffer[] = []): void => port.postMessage(msg, transfer);
  return {
    grant(n: number) {
      credits += n;
      wake();
    },
    head(status, headers) {
      post({ t: 'head', id, status, headers });
    },
    async chunk(data) {
      while (credits <= 0 && !signal.aborted) await new Promise<void>((r) => (waiter = r));
      if (signal.aborted) return;
      credits--;
      const buf = own(data);
      post({ t: 'chunk', id, data: buf }, [buf]);
    },
    end(info) {
      post({ t: 'end', id, ...scrubbedField(info?.scrubbed) });
    },
    full(status, headers, body, info) {
      const buf = own(body);
      post({ t: 'full', id, status, headers, body: buf, ...scrubbedField(info?.scrubbed) }, [buf]);
    },
  };
}

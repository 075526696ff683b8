/**
 * Thin aivaultd client: one WebSocket over the unix socket, many concurrent calls multiplexed by id.
 * Loaded by the CLI on every invoke, so it imports only our unix-socket WebSocket client (unix-ws.ts, not
 * `ws`: see there), the frame codec and the error model.
 * Never sees a secret: it sends envelopes and receives sanitized responses.
 *
 * @example
 * const client = await connect({ socketPath });
 * const res = await client.invoke({ capability: 'openai/models', request: { method: 'GET', path: '/v1/models' } });
 * client.close();
 */
import { AivaultError, fromWire } from '../errors.js';
import type { Envelope, HeaderList } from '../broker/types.js';
import {
  decodeDaemonFrame,
  encodeFrame,
  MAX_FRAME_BYTES,
  type CommandFrame,
  type DaemonFrame,
  type FrameId,
  type WireContext,
} from './frames.js';
import { openUnixWs, type UnixWs } from './unix-ws.js';
import type { Timings } from '../threads/server-timing.js';

export interface InvokeOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Ask the daemon for its per-stage timings (`timing` on the answer; ignored by a daemon without them). */
  timing?: boolean;
}

export interface InvokeResponse {
  status: number;
  headers: HeaderList;
  body: Uint8Array;
  /** Reflected secret values the daemon replaced in this response (absent when none). */
  scrubbed?: number;
  /** Where the call's time went in the daemon (only with `timing: true`). */
  timing?: Timings;
}

export interface StreamResponse {
  head: Promise<{ status: number; headers: HeaderList }>;
  body: AsyncIterable<Uint8Array>;
  /** Stop the call; the daemon aborts the upstream request. */
  cancel(): void;
  /** After the body ended: reflected secret values the daemon replaced (0 when none). */
  scrubbed(): number;
  /** After the body ended: the daemon's per-stage timings (only with `timing: true`). */
  timing(): Timings | undefined;
}

export interface DaemonClient {
  invoke(envelope: Envelope, context?: WireContext, opts?: InvokeOptions): Promise<InvokeResponse>;
  stream(envelope: Envelope, context?: WireContext, opts?: InvokeOptions): StreamResponse;
  /** Operator frames (forwarded by the daemon to its crypto worker). */
  operator(
    type: 'unlock' | 'lock' | 'status',
    passphrase?: string,
  ): Promise<Record<string, string | number | boolean | null>>;
  /** A one-time dashboard login code (operator channel; `aivault dashboard`). */
  dashboardLogin(passphrase?: string): Promise<Record<string, string | number | boolean | null>>;
  /** Run a CLI command in the daemon (writes while it serves the vault; everything in system mode). */
  command(req: CommandRequest): Promise<Record<string, string | number | boolean | null>>;
  ping(): Promise<void>;
  close(): void;
  readonly closed: Promise<void>;
}

export type CommandRequest = Omit<CommandFrame, 'v' | 'type' | 'id'>;

export interface ConnectOptions {
  socketPath: string;
  /** Buffered stream bytes (not yet consumed) above which the socket is paused. Default 4 MiB. */
  highWaterMark?: number;
  connectTimeoutMs?: number;
}

interface Pending {
  onFrame(frame: DaemonFrame): void;
  onClose(err: AivaultError): void;
}

/** Connect to aivaultd. Rejects with `daemon_unavailable` when nothing listens on the socket. */
export function connect(opts: ConnectOptions): Promise<DaemonClient> {
  const highWater = opts.highWaterMark ?? 4 * 1024 * 1024;
  let ws!: UnixWs;
  const pending = new Map<FrameId, Pending>();
  const pings: (() => void)[] = [];
  let nextId = 1;
  let buffered = 0;
  let paused = false;
  let closedErr: AivaultError | undefined;
  let resolveClosed!: () => void;
  const closed = new Promise<void>((r) => (resolveClosed = r));

  const allocId = (): FrameId => {
    const id = nextId;
    nextId = nextId >= Number.MAX_SAFE_INTEGER ? 1 : nextId + 1;
    return id;
  };

  const addBuffered = (n: number): void => {
    buffered += n;
    if (!paused && buffered > highWater) {
      paused = true;
      ws.pause();
    } else if (paused && buffered <= highWater / 2) {
      paused = false;
      ws.resume();
    }
  };

  const send = (frame: Parameters<typeof encodeFrame>[0]): void => {
    if (closedErr) throw closedErr;
    ws.send(encodeFrame(frame));
  };

  const onMessage = (data: Buffer, isBinary: boolean): void => {
    if (!isBinary) return;
    const res = decodeDaemonFrame(data);
    if (!res.ok) return; // a broken frame from the daemon cannot be routed; ignore it
    const frame = res.value;
    if (frame.type === 'pong') {
      pings.shift()?.();
      return;
    }
    if (frame.id === undefined) return;
    pending.get(frame.id)?.onFrame(frame);
  };

  const fail = (err: AivaultError): void => {
    if (closedErr) return;
    closedErr = err;
    for (const p of [...pending.values()]) p.onClose(err);
    pending.clear();
    resolveClosed();
  };
  const onClose = (code: number): void =>
    fail(new AivaultError('daemon_unavailable', `connection to aivaultd closed (code ${code})`));

  const call = (id: FrameId, p: Pending): void => {
    pending.set(id, p);
  };

  /** One request frame → one `result` (or `error`) frame. */
  const request = (
    build: (id: FrameId) => Parameters<typeof encodeFrame>[0],
  ): Promise<Record<string, string | number | boolean | null>> =>
    new Promise((resolve, reject) => {
      const id = allocId();
      call(id, {
        onFrame(frame) {
          pending.delete(id);
          if (frame.type === 'result') resolve(frame.data);
          else if (frame.type === 'error') reject(fromWire(frame));
        },
        onClose: reject,
      });
      try {
        send(build(id));
      } catch (err) {
        pending.delete(id);
        reject(err as Error);
      }
    });

  const client: DaemonClient = {
    closed,
    invoke(envelope, context = {}, o = {}) {
      return new Promise<InvokeResponse>((resolve, reject) => {
        const id = allocId();
        const onAbort = (): void => {
          pending.delete(id);
          if (!closedErr) send({ type: 'cancel', id });
          reject(new AivaultError('upstream_unreachable', 'invocation cancelled by the caller'));
        };
        if (o.signal?.aborted) return onAbort();
        o.signal?.addEventListener('abort', onAbort, { once: true });
        const done = (): void => {
          pending.delete(id);
          o.signal?.removeEventListener('abort', onAbort);
        };
        call(id, {
          onFrame(frame) {
            if (frame.type === 'response') {
              done();
              resolve({
                status: frame.status,
                headers: frame.headers,
                body: frame.body,
                ...(frame.scrubbed ? { scrubbed: frame.scrubbed } : {}),
                ...(frame.timing ? { timing: frame.timing } : {}),
              });
            } else if (frame.type === 'error') {
              done();
              // A daemon that predates `timing` refuses the field: ask again without it.
              if (o.timing && refusedTiming(frame)) {
                client.invoke(envelope, context, { ...o, timing: false }).then(resolve, reject);
                return;
              }
              reject(fromWire(frame));
            }
          },
          onClose(err) {
            done();
            reject(err);
          },
        });
        try {
          send({
            type: 'invoke',
            id,
            envelope,
            context,
            stream: false,
            ...timeout(o.timeoutMs),
            ...(o.timing ? { timing: true } : {}),
          });
        } catch (err) {
          done();
          reject(err as Error);
        }
      });
    },

    stream(envelope, context = {}, o = {}) {
      const id = allocId();
      const queue: Uint8Array[] = [];
      let ended = false;
      let scrubbed = 0;
      let timing: Timings | undefined;
      let error: AivaultError | undefined;
      let wake: (() => void) | undefined;
      let resolveHead!: (h: { status: number; headers: HeaderList }) => void;
      let rejectHead!: (e: Error) => void;
      const head = new Promise<{ status: number; headers: HeaderList }>((res, rej) => {
        resolveHead = res;
        rejectHead = rej;
      });
      head.catch(() => undefined); // surfaced through the body iterator too
      const notify = (): void => {
        const w = wake;
        wake = undefined;
        w?.();
      };
      const finish = (err?: AivaultError): void => {
        if (ended) return;
        ended = true;
        error = err;
        pending.delete(id);
        if (err) rejectHead(err);
        notify();
      };
      const cancel = (): void => {
        if (ended) return;
        if (!closedErr) send({ type: 'cancel', id });
        finish(new AivaultError('upstream_unreachable', 'invocation cancelled by the caller'));
        for (const c of queue.splice(0)) addBuffered(-c.byteLength);
      };
      o.signal?.addEventListener('abort', cancel, { once: true });
      call(id, {
        onFrame(frame) {
          switch (frame.type) {
            case 'head':
              resolveHead({ status: frame.status, headers: frame.headers });
              return;
            case 'response':
              resolveHead({ status: frame.status, headers: frame.headers });
              if (frame.body.byteLength > 0) queue.push(frame.body);
              scrubbed = frame.scrubbed ?? 0;
              timing = frame.timing;
              finish();
              return;
            case 'chunk':
              queue.push(frame.data);
              addBuffered(frame.data.byteLength);
              notify();
              return;
            case 'end':
              scrubbed = frame.scrubbed ?? 0;
              timing = frame.timing;
              finish();
              return;
            case 'error':
              finish(fromWire(frame));
              return;
            default:
              return;
          }
        },
        onClose(err) {
          finish(err);
        },
      });
      try {
        send({
          type: 'invoke',
          id,
          envelope,
          context,
          stream: true,
          ...timeout(o.timeoutMs),
          ...(o.timing ? { timing: true } : {}),
        });
      } catch (err) {
        finish(err as AivaultError);
      }
      const body: AsyncIterable<Uint8Array> = {
        [Symbol.asyncIterator]() {
          return {
            async next(): Promise<IteratorResult<Uint8Array>> {
              for (;;) {
                const chunk = queue.shift();
                if (chunk) {
                  addBuffered(-chunk.byteLength);
                  return { value: chunk, done: false };
                }
                if (ended) {
                  if (error) throw error;
                  return { value: undefined, done: true };
                }
                await new Promise<void>((r) => (wake = r));
              }
            },
            async return(): Promise<IteratorResult<Uint8Array>> {
              cancel();
              return { value: undefined, done: true };
            },
          };
        },
      };
      return { head, body, cancel, scrubbed: () => scrubbed, timing: () => timing };
    },

    operator(type, passphrase) {
      return request((id) => (type === 'unlock' ? { type, id, passphrase: passphrase ?? '' } : { type, id }));
    },

    command(req) {
      return request((id) => ({ type: 'command', id, ...req }));
    },

    dashboardLogin(passphrase) {
      return request((id) => ({
        type: 'dashboard-login',
        id,
        ...(passphrase !== undefined ? { passphrase } : {}),
      }));
    },

    ping() {
      return new Promise<void>((resolve, reject) => {
        if (closedErr) return reject(closedErr);
        pings.push(resolve);
        send({ type: 'ping' });
      });
    },

    close() {
      fail(new AivaultError('daemon_unavailable', 'client closed'));
      ws.close();
    },
  };

  return openUnixWs(
    {
      socketPath: opts.socketPath,
      maxPayload: MAX_FRAME_BYTES + 1024,
      handshakeTimeoutMs: opts.connectTimeoutMs ?? 5000,
    },
    { message: onMessage, close: onClose },
  ).then(
    (open) => {
      ws = open;
      return client;
    },
    (err: NodeJS.ErrnoException) => {
      throw new AivaultError('daemon_unavailable', `cannot connect to aivaultd at ${opts.socketPath}`, {
        cause: err.code ?? 'error',
      });
    },
  );
}

/** An older daemon's answer to an invoke frame carrying `timing` (its strict decoder refuses the field). */
function refusedTiming(frame: { error: string; message: string }): boolean {
  return frame.error === 'invalid_request' && frame.message.includes('unknown field "timing"');
}

function timeout(ms: number | undefined): { timeoutMs?: number } {
  return ms === undefined ? {} : { timeoutMs: ms };
}

/**
 * The daemon front: uWebSockets.js on a unix socket. Routes msgpack frames by id to calls in the request
 * pool, relays their output, and applies backpressure through the shared relay (relay.ts: stream credits
 * are granted only while the client's send buffer is below the high-water mark; `drain` pays owed ones). Holds no secrets and makes no policy
 * decision. A malformed frame gets an error frame; the connection stays usable.
 */
import { promises as fsp } from 'node:fs';
import { isListening } from '../core/protocol/socket-probe.js';
import { dirname } from 'node:path';
import { AivaultError, toWire } from '../core/errors.js';
import {
  decodeClientFrame,
  encodeChunkFrameParts,
  encodeFrame,
  MAX_FRAME_BYTES,
  peekFrameId,
  type FrameId,
  type FrameInput,
  type InvokeFrame,
} from '../core/protocol/frames.js';
import { scrubbedField } from '../core/threads/call-port.js';
import type { Timings } from '../core/threads/server-timing.js';
import type { DaemonPool } from '../pool/daemon-pool.js';
import { createTurnWriter, type TurnOutbox } from './turn-writer.js';
import { startRelayedCall, type CallRelay, type RelaySink } from './relay.js';
import type { SocketRole } from '../crypto-worker/operator-executor.js';
import { APPROVAL_COMMANDS } from '../cli/command-table.js';
import { runApprovalCommand } from './approval-ops.js';
import { forgetAfterCommand } from './approval-staleness.js';
import { socketCaller } from '../core/broker/approval-caller.js';
import {
  App,
  closeListenSocket,
  sendMessage,
  type ListenSocket,
  type Message,
  type TemplatedApp,
  type WebSocket,
} from './uws.js';
import { chmodSocket, prepareRunDir } from './run-dir.js';

export interface SocketServerOptions {
  readonly socketPath: string;
  readonly socketMode: number;
  readonly socketDirMode: number;
  /** Max concurrent calls per connection (default 1024). */
  readonly maxInflightPerConnection?: number;
  /** Client send-buffer bytes above which stream credits stop (default 1 MiB). */
  readonly highWaterMark?: number;
  /**
   * Unsent bytes a connection may hold (default MAX_UNSENT_BYTES_PER_CONNECTION): a non-stream response
   * that would push it past this is dropped (the call fails with daemon_busy), and so are new calls.
   */
  readonly maxUnsentBytes?: number;
  /** Called when a connection closes (for `--once`). */
  readonly onConnectionClosed?: () => void;
  readonly onConnectionOpened?: () => void;
  /**
   * Peers may name local files for the daemon to read (bodyFilePath, multipartFiles[].path). True only for
   * the owner's private socket; false for --shared, where a group member could read the owner's files.
   */
  readonly allowLocalFiles?: boolean;
  /**
   * Who connects here (operator-executor.ts): `owner` (user mode: the one socket), `operator` (system
   * mode: only the daemon user and root can open it) or `caller` (system mode: agents, invoke and
   * metadata only). Default `owner`.
   */
  readonly role?: SocketRole;
  /** Accept a root-owned socket dir an admin prepared (--shared); otherwise it must be ours. */
  readonly allowRootOwnedDir?: boolean;
  /**
   * Issue a one-time dashboard login code (`dashboard-login` frame, operator action: refused on the caller
   * socket). Undefined when the daemon serves no HTTP listener (there is no dashboard to log in to).
   */
  readonly dashboardLogin?: () => Record<string, string | number> | undefined;
}

interface Call {
  relay: CallRelay;
  readonly stream: boolean;
  /** Waiting for an operator's approval (not counted in `running`). */
  waiting?: boolean;
}

interface Conn {
  /** This connection's id in the daemon: its calls' `once` approvals are remembered for it alone. */
  readonly connection: string;
  calls: Map<FrameId, Call>;
  /** Calls whose credits wait for this connection to drain. */
  starved: Set<CallRelay>;
  open: boolean;
  /** Non-stream calls running now (at most MAX_NONSTREAM_CALLS_PER_CONNECTION). */
  running: number;
  /** Non-stream calls waiting for one of those slots, in arrival order. */
  queued: Map<FrameId, InvokeFrame>;
  /** Frames of this event-loop turn not yet handed to uWS (turn-writer.ts). */
  readonly outbox: TurnOutbox;
}

/**
 * The memory bound per connection: a client that stops reading can make aivaultd hold at most this many
 * unsent bytes for it, plus one response of any size sent while its buffer was empty. Stream calls never
 * get near it (credits stop at the high-water mark); non-stream responses arrive whole from the worker,
 * so they are the ones checked against it.
 */
export const MAX_UNSENT_BYTES_PER_CONNECTION = 16 * 1024 * 1024;
/**
 * Non-stream calls a connection may run at once; more wait in its queue. A non-stream answer is read whole
 * by the worker before anything is sent, so this (× the response size limit) bounds what one connection
 * can make the daemon hold before the unsent-bytes check above can see it.
 */
export const MAX_NONSTREAM_CALLS_PER_CONNECTION = 4;

/** Connection ids, unique in this process across every socket server (owner, operator, caller). */
let connections = 0;

export interface SocketServer {
  readonly socketPath: string;
  /** The uWS app: the optional loopback HTTP listener (http-server.ts) adds its routes to it. */
  readonly app: TemplatedApp;
  /** Stop accepting connections (in-flight calls continue). */
  stopListening(): void;
  /** Close every open connection. */
  closeConnections(): void;
  readonly connections: number;
}

/** Create the socket dir (never through a symlink, see run-dir.ts), remove a stale socket file. */
async function prepareSocketPath(path: string, dirMode: number, allowRootOwnedDir: boolean): Promise<void> {
  await prepareRunDir(dirname(path), dirMode, { allowRootOwned: allowRootOwnedDir });
  let existing;
  try {
    existing = await fsp.lstat(path);
  } catch {
    return;
  }
  if (!existing.isSocket()) {
    throw new AivaultError('usage', `${path} exists and is not a socket; refusing to replace it`);
  }
  if (await isListening(path)) {
    throw new AivaultError('conflict', `another aivaultd is already listening on ${path}`);
  }
  await fsp.unlink(path);
}

/**
 * A body chunk's frame. A large body goes as [msgpack head, the body bytes], fragments of one message, so
 * its bytes are not copied into a msgpack buffer first (bench/PROFILE.md: that copy drove the main
 * thread's GC on large streams); a small one (an SSE event) is joined into one buffer by the send anyway,
 * so msgpackr writes it whole into its reused buffer: one copy either way, and no head allocation.
 */
function chunkFrame(id: FrameId, data: Uint8Array): Message {
  return data.byteLength > SMALL_CHUNK_BYTES
    ? encodeChunkFrameParts(id, data)
    : encodeFrame({ type: 'chunk', id, data });
}
const SMALL_CHUNK_BYTES = 16 * 1024;

export async function startSocketServer(pool: DaemonPool, opts: SocketServerOptions): Promise<SocketServer> {
  const maxInflight = opts.maxInflightPerConnection ?? 1024;
  const highWater = opts.highWaterMark ?? 1024 * 1024;
  const maxUnsent = opts.maxUnsentBytes ?? MAX_UNSENT_BYTES_PER_CONNECTION;
  const notReading = (ws: WebSocket<Conn>): AivaultError =>
    // Capacity, not policy (`rate_limited` is a capability's per-minute limit only): daemon_busy.
    new AivaultError(
      'daemon_busy',
      `this connection is not reading its responses (${unsent(ws)} bytes unsent, max ${maxUnsent}); read them or retry`,
    );
  await prepareSocketPath(opts.socketPath, opts.socketDirMode, opts.allowRootOwnedDir === true);
  const sockets = new Set<WebSocket<Conn>>();

  // Frames go out once per turn and connection, in one write (turn-writer.ts).
  const writer = createTurnWriter<WebSocket<Conn>>({
    outboxOf: (ws) => {
      const conn = ws.getUserData();
      return conn.open ? conn.outbox : undefined;
    },
    write: (ws, frames) => {
      if (frames.length === 1) sendMessage(ws, frames[0] as Message);
      else ws.cork(() => frames.forEach((f) => sendMessage(ws, f)));
    },
    // Calls held back while these bytes counted as unsent: uWS fires `drain` only when its own buffer
    // shrinks, so when the write took them all at once nothing else would wake those calls.
    afterWrite: (ws) => {
      const conn = ws.getUserData();
      if (conn.starved.size > 0 || conn.queued.size > 0) relieve(ws);
    },
  });
  const send = (ws: WebSocket<Conn>, frame: FrameInput): void => {
    if (ws.getUserData().open) writer.send(ws, encodeFrame(frame));
  };
  /** Bytes sent to this connection and not yet written to it (uWS's buffer plus this turn's frames). */
  const unsent = (ws: WebSocket<Conn>): number => ws.getBufferedAmount() + ws.getUserData().outbox.bytes;
  const sendError = (ws: WebSocket<Conn>, id: FrameId | undefined, err: unknown): void => {
    const w = toWire(err);
    send(ws, {
      type: 'error',
      ...(id !== undefined ? { id } : {}),
      error: w.error,
      message: w.message,
      ...(w.details ? { details: w.details } : {}),
    });
  };

  const role: SocketRole = opts.role ?? 'owner';
  const forwardOperator = (
    ws: WebSocket<Conn>,
    frame: { type: 'unlock'; id: FrameId; passphrase: string } | { type: 'lock' | 'status'; id: FrameId },
  ): void => {
    pool.operator(frame.type, frame.type === 'unlock' ? frame.passphrase : undefined).then(
      (data) => send(ws, { type: 'result', id: frame.id, data }),
      (err: unknown) => sendError(ws, frame.id, err),
    );
  };

  /** Where call `id`'s answer goes: frames on this connection. */
  const frameSink = (ws: WebSocket<Conn>, id: FrameId, call: Call, wantsTiming: boolean): RelaySink => {
    // Timings go only to a client that asked (an older client's strict decoder refuses unknown fields).
    const t = (timing: Timings | undefined): { timing?: Timings } =>
      wantsTiming && timing ? { timing } : {};
    return {
      head: (status, headers, timing) => send(ws, { type: 'head', id, status, headers, ...t(timing) }),
      // The turn writer sends this turn's frames at its end (uWS copies what it cannot write at once) and
      // says so through `written`.
      chunk: (data, written) => {
        if (ws.getUserData().open) writer.send(ws, chunkFrame(id, data), written);
        else written?.();
      },
      chunkBytesFreed: 'written',
      end: (scrubbed, timing) => send(ws, { type: 'end', id, ...scrubbedField(scrubbed), ...t(timing) }),
      full: (status, headers, body, scrubbed, timing) => {
        if (!ws.getUserData().open) return;
        const pending = unsent(ws);
        if (pending > 0 && pending + body.byteLength > maxUnsent) {
          // The worker already read the whole body; dropping it here keeps a client that does not read
          // from making the daemon hold every response it asked for.
          sendError(ws, id, notReading(ws));
        } else if (call.stream) {
          ws.cork(() => {
            send(ws, { type: 'head', id, status, headers, ...t(timing) });
            if (body.byteLength > 0) writer.send(ws, chunkFrame(id, body));
            send(ws, { type: 'end', id, ...scrubbedField(scrubbed), ...t(timing) });
          });
        } else {
          send(ws, {
            type: 'response',
            id,
            status,
            headers,
            body,
            ...scrubbedField(scrubbed),
            ...t(timing),
          });
        }
      },
      error: (error) =>
        send(ws, {
          type: 'error',
          id,
          error: error.error,
          message: error.message,
          ...(error.details ? { details: error.details } : {}),
        }),
      finished: () => finished(ws, id, call),
      together: (writes) => {
        if (ws.getUserData().open) ws.cork(writes);
      },
      // A call waiting for the operator does not hold one of the connection's non-stream slots: other
      // calls on the connection go on meanwhile.
      awaitingApproval: (waiting) => {
        const conn = ws.getUserData();
        if (call.stream || call.waiting === waiting || conn.calls.get(id) !== call) return;
        call.waiting = waiting;
        conn.running += waiting ? -1 : 1;
        if (waiting) pump(ws);
      },
    };
  };

  const startInvoke = (ws: WebSocket<Conn>, frame: InvokeFrame): void => {
    const conn = ws.getUserData();
    const id = frame.id;
    const call = { stream: frame.stream } as Call;
    let relay: CallRelay;
    try {
      relay = startRelayedCall(
        pool,
        {
          envelope: frame.envelope,
          context: {
            ...frame.context,
            localFiles: opts.allowLocalFiles === true,
            socketConnection: conn.connection,
          },
          stream: frame.stream,
          ...(frame.timeoutMs !== undefined ? { timeoutMs: frame.timeoutMs } : {}),
          transport: 'socket',
        },
        frameSink(ws, id, call, frame.timing === true),
        () => unsent(ws) < highWater,
        (r) => conn.starved.add(r),
      );
    } catch (err) {
      sendError(ws, id, err);
      return;
    }
    call.relay = relay;
    conn.calls.set(id, call);
    if (!frame.stream) conn.running++;
  };

  /**
   * Start queued non-stream calls while there are free slots and the client keeps up with what it was sent;
   * otherwise they wait for `drain`. A client that stops reading thus stops its own calls (backpressure
   * reaches the upstream: nothing more is requested for it), instead of filling the daemon's memory.
   */
  const pump = (ws: WebSocket<Conn>): void => {
    const conn = ws.getUserData();
    for (const [id, frame] of conn.queued) {
      if (!conn.open || conn.running >= MAX_NONSTREAM_CALLS_PER_CONNECTION) return;
      if (unsent(ws) >= highWater) return;
      conn.queued.delete(id);
      startInvoke(ws, frame);
    }
  };

  /** The connection has room again: start queued calls, then grant credits to starved streams in order. */
  const relieve = (ws: WebSocket<Conn>): void => {
    const conn = ws.getUserData();
    pump(ws);
    for (const relay of conn.starved) {
      if (!relay.drained()) break; // the buffer is full again: the rest wait for the next drain
      conn.starved.delete(relay);
    }
  };

  const finished = (ws: WebSocket<Conn>, id: FrameId, call: Call): void => {
    const conn = ws.getUserData();
    conn.starved.delete(call.relay);
    if (conn.calls.get(id) !== call) return;
    conn.calls.delete(id);
    if (!call.stream && !call.waiting) {
      conn.running--;
      pump(ws);
    }
  };

  const onFrame = (ws: WebSocket<Conn>, bytes: Uint8Array): void => {
    const conn = ws.getUserData();
    const res = decodeClientFrame(bytes);
    if (!res.ok) return sendError(ws, peekFrameId(bytes), res.error);
    const frame = res.value;
    switch (frame.type) {
      case 'ping':
        return send(ws, { type: 'pong', ...(frame.id !== undefined ? { id: frame.id } : {}) });
      case 'cancel': {
        if (conn.queued.delete(frame.id)) {
          return sendError(
            ws,
            frame.id,
            new AivaultError('upstream_unreachable', 'invocation cancelled by the caller'),
          );
        }
        conn.calls.get(frame.id)?.relay.cancel();
        return;
      }
      case 'command': {
        const authorized = pool.command({
          role,
          command: frame.command,
          args: frame.args,
          opts: frame.opts,
          color: frame.color,
          ...(frame.passphrase !== undefined ? { passphrase: frame.passphrase } : {}),
        });
        // Pending approvals live on this thread: the crypto worker checked the operator's proof above.
        (APPROVAL_COMMANDS.has(frame.command)
          ? authorized.then(() =>
              runApprovalCommand(
                pool.approvals,
                frame.command,
                frame.args,
                frame.opts,
                frame.color,
                `cli:${role}`,
              ),
            )
          : authorized.then((data) => {
              forgetAfterCommand(pool.approvals, frame.command, frame.args, frame.opts);
              return data;
            })
        ).then(
          (data) => send(ws, { type: 'result', id: frame.id, data }),
          (err: unknown) => sendError(ws, frame.id, err),
        );
        return;
      }
      case 'unlock':
      case 'lock':
        if (role === 'caller') {
          return sendError(
            ws,
            frame.id,
            new AivaultError(
              'operator_auth_required',
              `${frame.type} is an operator action: this socket is for callers (agents); use the operator socket`,
              { action: frame.type },
            ),
          );
        }
        return forwardOperator(ws, frame);
      case 'status':
        return forwardOperator(ws, frame);
      case 'dashboard-login': {
        if (role === 'caller') {
          return sendError(
            ws,
            frame.id,
            new AivaultError(
              'operator_auth_required',
              'the dashboard is an operator action: this socket is for callers (agents); use the operator socket',
              { action: 'dashboard' },
            ),
          );
        }
        // The owner socket (user mode) proves the operator like a write command: the passphrase on a
        // passphrase vault (the crypto worker checks it); the operator socket is proof by itself.
        const proof =
          role === 'owner' ? pool.operator('verify-passphrase', frame.passphrase ?? '') : Promise.resolve({});
        proof.then(
          () => {
            const login = opts.dashboardLogin?.();
            if (!login) {
              return sendError(
                ws,
                frame.id,
                new AivaultError('daemon_unavailable', 'aivaultd serves no HTTP listener: no dashboard'),
              );
            }
            send(ws, { type: 'result', id: frame.id, data: login });
          },
          (err: unknown) => sendError(ws, frame.id, err),
        );
        return;
      }
      case 'invoke': {
        if (conn.calls.has(frame.id) || conn.queued.has(frame.id)) {
          return sendError(
            ws,
            frame.id,
            new AivaultError('invalid_request', `call id ${frame.id} is already in flight`),
          );
        }
        if (unsent(ws) >= maxUnsent) return sendError(ws, frame.id, notReading(ws));
        if (conn.calls.size + conn.queued.size >= maxInflight) {
          return sendError(
            ws,
            frame.id,
            new AivaultError(
              'daemon_busy',
              `too many in-flight invocations on this connection (max ${maxInflight})`,
            ),
          );
        }
        if (!frame.stream && conn.running >= MAX_NONSTREAM_CALLS_PER_CONNECTION) {
          conn.queued.set(frame.id, frame);
          return;
        }
        startInvoke(ws, frame);
        return;
      }
    }
  };

  const app = App().ws<Conn>('/*', {
    maxPayloadLength: MAX_FRAME_BYTES + 1024,
    // Sends are never dropped: stream output is bounded by credits, not by uWS's drop limit.
    maxBackpressure: 1024 * 1024 * 1024,
    closeOnBackpressureLimit: 0,
    idleTimeout: 0,
    sendPingsAutomatically: false,
    upgrade: (res, req, context) => {
      // The msgpack protocol is for unix-socket peers only (uWS reports no address for them): the same
      // app may also listen on loopback TCP for the HTTP contracts, whose peers must not reach this route.
      if (res.getRemoteAddress().byteLength > 0) {
        res.writeStatus('404 Not Found').end();
        return;
      }
      res.upgrade<Conn>(
        {
          connection: String(++connections),
          calls: new Map(),
          starved: new Set(),
          open: true,
          running: 0,
          queued: new Map(),
          outbox: { frames: [], bytes: 0 },
        },
        req.getHeader('sec-websocket-key'),
        req.getHeader('sec-websocket-protocol'),
        req.getHeader('sec-websocket-extensions'),
        context,
      );
    },
    open: (ws) => {
      sockets.add(ws);
      opts.onConnectionOpened?.();
    },
    message: (ws, message, isBinary) => {
      if (!isBinary) {
        return sendError(
          ws,
          undefined,
          new AivaultError('invalid_request', 'frames must be binary messages'),
        );
      }
      // uWS neuters `message` after this callback: copy before anything async touches it.
      onFrame(ws, new Uint8Array(message.slice(0)));
    },
    drain: (ws) => relieve(ws),
    close: (ws) => {
      sockets.delete(ws);
      writer.forget(ws); // a closed uWS socket must not be touched again
      const conn = ws.getUserData();
      conn.open = false;
      // Client gone: abort everything it started (the workers cancel their upstream requests).
      for (const call of [...conn.calls.values()]) call.relay.stop();
      conn.calls.clear();
      conn.starved.clear();
      conn.queued.clear();
      // Its `once` approvals were for this connection: a later one (even the same client) asks again.
      pool.approvals.forgetCaller(socketCaller(conn.connection));
      opts.onConnectionClosed?.();
    },
  });

  const oldUmask = process.umask(0o177);
  let listenSocket: ListenSocket | false;
  try {
    listenSocket = await new Promise<ListenSocket | false>((resolve) => {
      app.listen_unix((s) => resolve(s), opts.socketPath);
    });
  } finally {
    process.umask(oldUmask);
  }
  if (!listenSocket) throw new AivaultError('daemon_unavailable', `cannot listen on ${opts.socketPath}`);
  try {
    await chmodSocket(opts.socketPath, opts.socketMode);
  } catch (err) {
    closeListenSocket(listenSocket);
    throw err;
  }
  let ls: ListenSocket | undefined = listenSocket;

  return {
    socketPath: opts.socketPath,
    app,
    stopListening() {
      if (!ls) return;
      closeListenSocket(ls);
      ls = undefined;
      void fsp.unlink(opts.socketPath).catch(() => undefined);
    },
    closeConnections() {
      // What this turn still holds goes out before the close frame.
      for (const ws of [...sockets]) {
        writer.flush(ws);
        ws.end(1001, 'aivaultd shutting down');
      }
    },
    get connections() {
      return sockets.size;
    },
  };
}

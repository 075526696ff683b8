/**
 * HTTP/2 to upstreams. The Agent offers ALPN `h2` and the large providers accept it, so most production
 * calls go out over HTTP/2. undici 7 (the last line that runs on Node 20) leaves two gaps there, closed here:
 *
 * 1. Multiplexing. A Client runs `pipelining` requests at once and that option defaults to 1 for h2 too
 *    (nodejs/undici#4143; fixed in undici 8, which needs Node 22), so every concurrent call still opened its
 *    own TLS connection: 1,000 SSE streams = 1,000 connections, ~50 KB of heap and TLS buffers each.
 *    Raising `pipelining` for every Client would pipeline HTTP/1.1 too, where one long SSE response stalls
 *    every call queued behind it on that connection. So each Client sets it from what its connection turned
 *    out to be: 1 for HTTP/1.1; for h2 the peer's SETTINGS_MAX_CONCURRENT_STREAMS, capped. Following the
 *    peer's limit matters: Node queues streams above it inside the session, behind streams that may last
 *    minutes, instead of failing them or opening another connection. The limit an origin announced is
 *    remembered, so the next Client for it multiplexes before its handshake is done.
 * 2. Truncation. When the peer resets a stream (RST_STREAM CANCEL or NO_ERROR) before END_STREAM, Node ends
 *    the stream's readable side as if the response were complete, and undici reports a complete response
 *    with a cut body. Over HTTP/1.1 the same event fails the call. The guard below fails it on h2 too.
 * 3. Graceful GOAWAY. A server restarting or rotating connections (nginx after `keepalive_requests`,
 *    CDNs after a while) sends GOAWAY(NO_ERROR): the streams it already has finish, new ones go elsewhere.
 *    undici 7 destroys the socket instead, failing every open stream; with 100 calls per connection that
 *    turns a routine rotation into 100 failed calls. Node's session already does the graceful part, so
 *    undici is kept out of it: the Client stops taking calls, open streams finish, and undici tidies up
 *    when the session closes. A GOAWAY with an error code still fails everything at once.
 *
 * All three reach into undici's Client (symbols from undici/lib/core/symbols.js: the `kMaxConcurrentStreams`
 * slot its h2 code writes when the peer's SETTINGS arrive, `kBusy`, `kNeedDrain`, the session's `kClient`)
 * and into Node's Http2Stream.push and session events; the h2 upstream tests fail if any of them moves.
 */
import type * as Http2 from 'node:http2';
import { createRequire } from 'node:module';
import type { Client as UndiciClient, Pool as UndiciPool, Dispatcher, buildConnector } from 'undici';

const requireUndici = createRequire(import.meta.url);
// The module object itself (what undici's `require('node:http2')` sees), not an ESM namespace copy.
const http2 = requireUndici('node:http2') as typeof Http2;
const Client = requireUndici('undici/lib/dispatcher/client.js') as typeof UndiciClient;
const Pool = requireUndici('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
// A Pool's own "this Client refused a call" mark (a different symbol from the Client's kNeedDrain), its
// Clients and its "which Client takes the next call" step.
const {
  kNeedDrain: kPoolNeedDrain,
  kClients,
  kGetDispatcher,
} = requireUndici('undici/lib/dispatcher/pool-base.js') as Record<
  'kNeedDrain' | 'kClients' | 'kGetDispatcher',
  symbol
>;
const { kMaxConcurrentStreams, kBusy, kConnected, kSize, kNeedDrain, kClient } = requireUndici(
  'undici/lib/core/symbols.js',
) as Record<'kMaxConcurrentStreams' | 'kBusy' | 'kConnected' | 'kSize' | 'kNeedDrain' | 'kClient', symbol>;

/**
 * Streams per h2 connection at most, whatever the peer allows: more calls than this open another
 * connection. 100 is the RFC's recommended floor for SETTINGS_MAX_CONCURRENT_STREAMS (what nginx, Google
 * and Node announce or exceed), and what undici assumes before the peer's SETTINGS arrive.
 */
export const H2_MAX_STREAMS_PER_CONNECTION = 100;

/** Calls one connection may carry at once: 1 on HTTP/1.1 (no pipelining), the peer's limit (capped) on h2. */
export function streamsPerConnection(h2: boolean, peerMaxStreams: number | undefined): number {
  if (!h2) return 1;
  const peer = peerMaxStreams ?? H2_MAX_STREAMS_PER_CONNECTION;
  if (!Number.isFinite(peer) || peer < 1) return 1;
  return Math.min(Math.floor(peer), H2_MAX_STREAMS_PER_CONNECTION);
}

/**
 * What each origin's connections turned out to speak: 1 for HTTP/1.1, the stream limit for h2 (as the peer
 * announced it, capped). Bounded: the oldest forgotten first.
 */
class PeerLimits {
  private readonly limits = new Map<string, number>();
  constructor(private readonly max = 256) {}
  get(origin: string): number | undefined {
    return this.limits.get(origin);
  }
  set(origin: string, limit: number): void {
    this.limits.delete(origin);
    this.limits.set(origin, limit);
    if (this.limits.size > this.max) this.limits.delete(this.limits.keys().next().value as string);
  }
}

const H2 = Symbol('aivault.h2');
const PEER_MAX = Symbol('aivault.peerMaxStreams');
const LIMITS = Symbol('aivault.peerLimits');
const ORIGIN = Symbol('aivault.origin');
const POOL = Symbol('aivault.pool');
const DRAINING = Symbol('aivault.draining');
/** undici's own `kBusy` getter, looked up once (the override below runs for every call a Pool places). */
const baseBusy = Object.getOwnPropertyDescriptor(Client.prototype, kBusy)?.get as (this: unknown) => boolean;
if (typeof baseBusy !== 'function') throw new Error('undici Client has no kBusy getter: its internals moved');

/*
 * undici's h2 code stores the peer's SETTINGS_MAX_CONCURRENT_STREAMS on the Client (`kMaxConcurrentStreams`)
 * and never reads it again for dispatch. An accessor in its place turns that write into the moment to widen
 * the Client. The base constructor writes it too, before this class's own fields exist: symbols on `this`,
 * not #private fields.
 */
class MultiplexingClient extends Client {
  declare [H2]: boolean | undefined;
  declare [PEER_MAX]: number | undefined;
  declare [LIMITS]: PeerLimits | undefined;
  declare [ORIGIN]: string | undefined;
  declare [DRAINING]: boolean | undefined;
  declare [POOL]: LearningPool | undefined;

  get [kMaxConcurrentStreams](): number | undefined {
    return this[PEER_MAX];
  }
  set [kMaxConcurrentStreams](value: number | undefined) {
    this[PEER_MAX] = value;
    if (this[H2] !== true) return;
    const streams = streamsPerConnection(true, value);
    this[LIMITS]?.set(this[ORIGIN] as string, streams);
    if (this.pipelining !== streams) this.pipelining = streams;
  }

  /*
   * While connecting, undici counts a Client with any request queued as busy, so a Pool hands each further
   * call of a burst to yet another new Client: 1,000 streams at once would dial ~900 connections. A Client
   * for an origin known to speak h2 takes calls up to its stream count while its handshake runs.
   */
  get [kBusy](): boolean {
    if (this[DRAINING] === true) return true;
    const self = this as unknown as Record<symbol, unknown>;
    if (this.pipelining > 1 && self[kConnected] !== true) return (self[kSize] as number) >= this.pipelining;
    return baseBusy.call(this);
  }

  /** Its session got a graceful GOAWAY: no new calls here until that session has closed. */
  drain(): void {
    this[DRAINING] = true;
    const self = this as unknown as Record<symbol, unknown>;
    self[kNeedDrain] = 2; // the Client emits 'drain' when it is free again …
    self[kPoolNeedDrain] = true; // … and until then its Pool passes it over
  }

  /** The draining session closed; undici reconnects this Client when it is given calls again. */
  drained(): void {
    if (this[DRAINING] !== true) return;
    this[DRAINING] = false;
    this.pipelining = this.pipelining; // undici's setter resumes, which announces the Client free again
  }

  /** The connector's answer: ALPN picked h2 or not. */
  connected(h2: boolean): void {
    this[DRAINING] = false;
    this[H2] = h2;
    const origin = this[ORIGIN] as string;
    const known = this[LIMITS]?.get(origin);
    const streams = streamsPerConnection(h2, known === 1 ? undefined : known);
    this[LIMITS]?.set(origin, streams);
    if (this.pipelining !== streams) this.pipelining = streams;
    // Calls held back while the protocol was unknown: onto this connection's free streams, then new ones.
    this[POOL]?.dialQueued();
  }
}

/**
 * Until an origin's first connection tells whether it speaks h2, a burst of calls would each dial their
 * own connection (a Client that is still connecting counts as busy): on a cold start 1,000 streams became
 * hundreds of connections, most of them h2 and idle a moment later. So while the protocol is unknown, at
 * most COLD_DIALS connections are dialled and further calls wait in the Pool; the first answer releases
 * them: onto that h2 connection, or onto HTTP/1.1 connections of their own.
 */
const COLD_DIALS = 4;

class LearningPool extends Pool {
  declare [LIMITS]: PeerLimits;
  declare [ORIGIN]: string;

  [kGetDispatcher](): Dispatcher | undefined {
    if (this[LIMITS].get(this[ORIGIN]) === undefined) {
      let dialing = 0;
      for (const c of (this as unknown as Record<symbol, MultiplexingClient[]>)[kClients] ?? []) {
        if (!(c as unknown as Record<symbol, unknown>)[kPoolNeedDrain]) return c;
        if (c[H2] === undefined) dialing++;
      }
      if (dialing >= COLD_DIALS) return undefined;
    }
    const base = Reflect.get(Pool.prototype, kGetDispatcher) as (this: UndiciPool) => Dispatcher | undefined;
    return base.call(this);
  }

  /**
   * Calls waiting in the Pool get Clients. undici moves its Pool's queue only into a Client that signals
   * 'drain', and only as much as that one Client takes; so each round asks for a dispatcher (a free Client,
   * or a new one) and has it take its share, until the queue is empty or stops shrinking.
   */
  dialQueued(): void {
    const origin = new URL(this[ORIGIN]);
    let queued = this.stats.queued;
    while (queued > 0) {
      const client = (this as unknown as Record<symbol, () => Dispatcher | undefined>)[kGetDispatcher]?.();
      if (!client) return;
      (client as unknown as { emit(e: string, ...a: unknown[]): boolean }).emit('drain', origin, [client]);
      const left = this.stats.queued;
      if (left >= queued) return;
      queued = left;
    }
  }
}

type Connector = buildConnector.connector;
type FactoryOptions = UndiciPool.Options & { connect: Connector };

/**
 * The Agent's `factory`: a Pool per origin whose Clients size their concurrency from the protocol their
 * connection speaks. One PeerLimits per Agent (an Agent is one client identity).
 */
/** The Agent hands its Pool a string, the Pool hands its Clients a URL: one key for both. */
function originKey(origin: string | URL): string {
  return (typeof origin === 'string' ? new URL(origin) : origin).origin;
}

export function multiplexingPoolFactory(): (origin: string | URL, opts: object) => Dispatcher {
  const limits = new PeerLimits();
  const clientFactory = (origin: string | URL, opts: object, pool: LearningPool): Dispatcher => {
    const o = opts as FactoryOptions;
    const key = originKey(origin);
    // Called only once the Client exists (undici dials on the first call, never in its constructor).
    const connect: Connector = (options, callback) =>
      o.connect(options, ((err: Error | null, socket: { alpnProtocol?: string | false } | null) => {
        (callback as (e: Error | null, s: unknown) => void)(err, socket);
        if (!err && socket) client.connected(socket.alpnProtocol === 'h2');
        // A failed dial leaves the Pool (undici drops the Client); calls held back still need one.
        else if (err) queueMicrotask(() => pool.dialQueued());
      }) as Parameters<Connector>[1]);
    const client = new MultiplexingClient(origin, {
      ...o,
      connect,
      pipelining: limits.get(key) ?? 1,
    });
    client[ORIGIN] = key;
    client[LIMITS] = limits;
    client[POOL] = pool;
    return client;
  };
  return (origin, opts) => {
    const pool: LearningPool = new LearningPool(origin, {
      ...(opts as UndiciPool.Options),
      factory: (o: string | URL, copts: object) => clientFactory(o, copts, pool),
    });
    pool[ORIGIN] = originKey(origin);
    pool[LIMITS] = limits;
    return pool;
  };
}

/** A stream the upstream reset before END_STREAM. Mapped to upstream_unreachable like a dropped socket. */
export class H2StreamResetError extends Error {
  readonly code = 'ERR_HTTP2_STREAM_ERROR';
  constructor(rstCode: number | undefined) {
    super(
      `HTTP/2 stream reset by the upstream (code ${rstCode ?? 'unknown'}) before the response was complete`,
    );
    this.name = 'H2StreamResetError';
  }
}

/*
 * Node ends a stream's readable side in two places: when END_STREAM arrives (the stream still open), and
 * when the stream closes (a peer's RST_STREAM, or the normal close after END_STREAM). In the second case
 * it marks the stream closed first and then pushes the end. So the first end pushed onto an already closed
 * stream is a reset before the response was complete.
 */
function guardTruncation(stream: Http2.ClientHttp2Stream): void {
  let ended = false;
  const push = stream.push;
  stream.push = function (this: Http2.ClientHttp2Stream, chunk: unknown, encoding?: BufferEncoding) {
    if (chunk === null && !ended) {
      ended = true;
      if (stream.closed) {
        // Not synchronously: Node's close handler that is pushing this end still uses the stream's session
        // after the push returns, and destroy() detaches it.
        const err = new H2StreamResetError(stream.rstCode);
        process.nextTick(() => stream.destroy(err));
        return false;
      }
    }
    return push.call(this, chunk, encoding);
  };
}

let installed = false;

/** Streams this session carries now (undici keeps its own count private). */
const OPEN = Symbol('aivault.openStreams');

/**
 * A graceful GOAWAY on a session with open streams is kept from undici (point 3 above). Node then closes
 * the session itself once those streams end, and undici's 'close' handler tidies the Client up.
 */
function keepGoAwayGraceful(session: Http2.ClientHttp2Session): void {
  const emit = session.emit;
  session.emit = function (this: Http2.ClientHttp2Session, event: string | symbol, ...args: unknown[]) {
    if (event === 'goaway' && args[0] === http2.constants.NGHTTP2_NO_ERROR) {
      const open = (this as unknown as Record<symbol, number>)[OPEN] ?? 0;
      const client = (this as unknown as Record<symbol, unknown>)[kClient];
      if (open > 0 && client instanceof MultiplexingClient) {
        client.drain();
        this.once('close', () => client.drained());
        return true;
      }
    }
    return emit.call(this, event, ...args);
  } as typeof session.emit;
}

/**
 * Every h2 session this thread opens gets the truncation guard on each of its streams and graceful GOAWAY
 * handling. undici calls `http2.connect` on the module object at connect time, so wrapping it there
 * reaches undici without a fork. Idempotent; request workers call it once.
 */
export function installH2Guards(): void {
  if (installed) return;
  installed = true;
  const connect = http2.connect;
  http2.connect = function (this: unknown, ...args: Parameters<typeof http2.connect>) {
    const session = connect.apply(this, args);
    const counts = session as unknown as Record<symbol, number>;
    counts[OPEN] = 0;
    keepGoAwayGraceful(session);
    const request = session.request;
    session.request = function (this: Http2.ClientHttp2Session, ...rargs: Parameters<typeof request>) {
      const stream = request.apply(this, rargs);
      counts[OPEN] = (counts[OPEN] ?? 0) + 1;
      stream.once('close', () => {
        counts[OPEN] = (counts[OPEN] ?? 1) - 1;
      });
      guardTruncation(stream);
      return stream;
    };
    return session;
  } as typeof http2.connect;
}

/**
 * Upstream transport: undici Agents (keep-alive pool per origin, HTTP/1.1 + HTTP/2) whose connector
 * refuses forbidden addresses AT CONNECT TIME (after DNS), so DNS rebinding cannot bypass the guard.
 * Never follows redirects (a 3xx goes back to the caller; auth never travels to another host).
 * Holds client-cert material only inside the TLS options of an mTLS Agent; never logs it.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { createHash } from 'node:crypto';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import { createRequire } from 'node:module';
import type { Agent as UndiciAgent, buildConnector as UndiciBuildConnector, Dispatcher } from 'undici';
import { AivaultError } from '../../core/errors.js';
import type { DevOverrides } from '../../core/config/env.js';
import { isForbiddenAddress } from '../../core/broker/addresses.js';
import type { CallAbortSignal } from '../../core/threads/call-signal.js';
import { createSaturation, gateHandshakes } from './handshake-gate.js';
import { installH2Guards, multiplexingPoolFactory } from './h2-multiplex.js';
import { ExchangeHandler, type UpstreamResponse } from './upstream-response.js';

/*
 * undici's Agent and connector only, not its package entry: `import 'undici'` also loads fetch, WebSocket,
 * EventSource, the cache and the mocks (~3 MB of heap in every request worker, which uses none of them;
 * bench/PROFILE.md, Memory), and calls go out through `dispatch` with our own handler
 * (./upstream-response.ts), so not even the request API is loaded. The paths are undici 7's (pinned by the
 * lockfile); the upstream tests fail if they move.
 */
const requireUndici = createRequire(import.meta.url);
const Agent = requireUndici('undici/lib/dispatcher/agent.js') as typeof UndiciAgent;
type Agent = UndiciAgent;
const buildConnector = requireUndici('undici/lib/core/connect.js') as typeof UndiciBuildConnector;

/** Brand on errors raised by the address guard, so they map to policy_violation rather than unreachable. */
export const FORBIDDEN_ADDRESS_CODE = 'AIVAULT_FORBIDDEN_ADDRESS';

export interface ClientCert {
  /** PEM certificate chain and private key, from the mtls auth output. */
  readonly cert: string;
  readonly key: string;
  /** Extra PEM CA(s) to verify this upstream with, on top of the default roots (and the dev CA). */
  readonly ca?: string;
}

export interface UpstreamOptions {
  /** Honoured dev overrides (only for a verified dev vault), else undefined. */
  readonly dev?: DevOverrides;
  readonly connectTimeoutMs?: number;
  readonly headersTimeoutMs?: number;
  readonly bodyTimeoutMs?: number;
  readonly keepAliveTimeoutMs?: number;
  /** DNS resolver (default dns.lookup with all: true). Tests inject answers to simulate rebinding. */
  readonly resolve?: Resolver;
  /** How long a client identity's Agent outlives its last call (default CLIENT_IDENTITY_IDLE_MS). */
  readonly identityIdleMs?: number;
}

/**
 * An mTLS identity's Agent holds the private key in its TLS context (OpenSSL memory) for as long as the
 * Agent lives. It is closed (gracefully: running calls finish) this long after the identity's last call,
 * the lifetime of a decrypted value in the secret cache (docs/security.md): an old key after a rotation,
 * and every key after `aivault lock`, does not stay in a request worker for the thread's life.
 */
export const CLIENT_IDENTITY_IDLE_MS = 5 * 60 * 1000;

export type Resolver = (hostname: string) => Promise<LookupAddress[]>;

/**
 * How long an upstream may stay silent — before its response head, and between two body chunks — before
 * the call fails with upstream_unreachable. Ten minutes, the request timeout of the OpenAI and Anthropic
 * SDKs: a non-streaming completion sends its head only once the whole answer is generated, which takes
 * minutes for long or reasoning outputs (the reference implementation sets no limit at all). A caller
 * that wants less passes --timeout-ms. Headers and body share one value on purpose: undici's parser then
 * refreshes its one timer when the head arrives instead of allocating a second one per request.
 */
export const UPSTREAM_SILENCE_TIMEOUT_MS = 600_000;

const systemResolver: Resolver = (hostname) =>
  new Promise((resolve, reject) => {
    dnsLookup(hostname, { all: true }, (err, addresses) => (err ? reject(err) : resolve(addresses)));
  });

export interface UpstreamRequest {
  readonly host: string;
  readonly port: number;
  readonly method: string;
  /** Path plus `?query` (already normalized and auth-injected). */
  readonly pathAndQuery: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly body?: Dispatcher.DispatchOptions['body'];
  readonly signal?: CallAbortSignal;
  readonly clientCert?: ClientCert;
}

type LookupCallback = (
  err: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

function forbidden(host: string): NodeJS.ErrnoException {
  const err = new Error(
    `refusing to connect to ${host}: it resolves to a forbidden address`,
  ) as NodeJS.ErrnoException;
  err.code = FORBIDDEN_ADDRESS_CODE;
  return err;
}

/**
 * dns.lookup wrapper: resolves every address and refuses the connection when ANY of them is forbidden
 * (a rebinding answer mixing a public and a private address fails closed). A dev-mapped host resolves
 * to the operator's explicit address, which is allowed even on loopback.
 */
export function createGuardedLookup(dev: DevOverrides | undefined, resolver: Resolver = systemResolver) {
  return function guardedLookup(
    hostname: string,
    options: { all?: boolean; family?: number } | number,
    callback: LookupCallback,
  ): void {
    const all = typeof options === 'object' && options.all === true;
    const mapped = dev?.resolve.get(hostname.toLowerCase());
    const answer = (addresses: LookupAddress[]): void => {
      const first = addresses[0];
      if (!first) return callback(forbidden(hostname), all ? [] : '', 0);
      if (all) callback(null, addresses);
      else callback(null, first.address, first.family);
    };
    if (mapped) {
      return answer([{ address: mapped.address, family: isIP(mapped.address) === 6 ? 6 : 4 }]);
    }
    resolver(hostname).then(
      (addresses) => {
        if (addresses.length === 0 || addresses.some((a) => isForbiddenAddress(a.address))) {
          return callback(forbidden(hostname), all ? [] : '', 0);
        }
        answer(addresses);
      },
      (err: NodeJS.ErrnoException) => callback(err, all ? [] : '', 0),
    );
  };
}

/** What the upstream transport reports to /metrics in the daemon (per thread). */
export interface UpstreamObserver {
  /** A new upstream connection took `ms` to establish (or to fail). */
  connect(ms: number): void;
  /** A refused HTTP/2 stream is being sent again (REFUSED_STREAM_RETRIES). */
  refusedRetry(): void;
}

let observer: UpstreamObserver | undefined;

/** Set (or clear) this thread's observer (the request worker feeds its metrics with it). */
export function setUpstreamObserver(next: UpstreamObserver | undefined): void {
  observer = next;
}

export class Upstream {
  private readonly agents = new Map<string, Agent>();
  /** Client identities (keys of `agents`) and when each last started a call. */
  private readonly identityUsedAt = new Map<string, number>();
  private identityTimer: NodeJS.Timeout | undefined;
  private readonly dev: DevOverrides | undefined;
  private readonly opts: UpstreamOptions;
  private readonly ca: string[] | undefined;
  /** Whether this thread is saturated (handshake-gate.ts); one measure for all of its agents. */
  private readonly saturated = createSaturation();

  constructor(opts: UpstreamOptions = {}) {
    this.opts = opts;
    this.dev = opts.dev;
    if (this.dev?.caCertPath) {
      let extra: string;
      try {
        extra = readFileSync(this.dev.caCertPath, 'utf8');
      } catch {
        throw new AivaultError(
          'invalid_request',
          `cannot read AIVAULT_DEV_CA_CERT_PATH ${this.dev.caCertPath}`,
        );
      }
      this.ca = [...rootCertificates, extra];
    }
    if (!this.dev?.http1Only) installH2Guards();
  }

  private agentFor(cert: ClientCert | undefined): Agent {
    // One Agent (own connection pool + TLS context) per client identity: keyed by a digest of the cert, key
    // and extra CA, so connections are never shared between identities and no PEM is kept as a map key.
    const key = cert
      ? createHash('sha256')
          .update(cert.cert)
          .update('\0')
          .update(cert.key)
          .update('\0')
          .update(cert.ca ?? '')
          .digest('hex')
      : 'default';
    if (cert) this.touchIdentity(key);
    let agent = this.agents.get(key);
    if (agent) return agent;
    const allowH2 = !this.dev?.http1Only;
    const lookup = createGuardedLookup(this.dev, this.opts.resolve);
    // Build the TLS context ONCE per Agent: passing `ca`/`cert` per connection would make Node parse the
    // whole root store again for every TLS handshake.
    let secureContext: SecureContext | undefined;
    const ca = cert?.ca !== undefined ? [...(this.ca ?? rootCertificates), cert.ca] : this.ca;
    if (ca || cert) {
      secureContext = createSecureContext({
        ...(ca ? { ca } : {}),
        ...(cert ? { cert: cert.cert, key: cert.key } : {}),
      });
    }
    const base = buildConnector({
      allowH2,
      timeout: this.opts.connectTimeoutMs ?? 10_000,
      lookup,
      ...(secureContext ? { secureContext } : {}),
    } as UndiciBuildConnector.BuildOptions);
    const dev = this.dev;
    const dial: UndiciBuildConnector.connector = (options, callback) => {
      const mapped = dev?.resolve.get(options.hostname.toLowerCase());
      if (mapped) {
        // The operator mapped this host explicitly: dial the mapped port; SNI/Host stay the real name.
        return base({ ...options, port: String(mapped.port), servername: options.hostname }, callback);
      }
      // IP literals skip DNS (net never calls lookup for them), so check them here.
      const bare = options.hostname.replace(/^\[|\]$/g, '');
      if (isIP(bare) !== 0 && isForbiddenAddress(bare)) return callback(forbidden(options.hostname), null);
      return base(options, callback);
    };
    // Connections are per origin and kept alive: timing each one costs nothing per request.
    const timed: UndiciBuildConnector.connector = (options, callback) => {
      const observe = observer;
      if (!observe) return dial(options, callback);
      const started = performance.now();
      return dial(options, ((err: Error | null, socket: unknown) => {
        observe.connect(performance.now() - started);
        (callback as (e: Error | null, s: unknown) => void)(err, socket);
      }) as typeof callback);
    };
    const connect = gateHandshakes(timed, this.saturated);
    agent = new Agent({
      connect,
      allowH2,
      // h2 connections carry many calls at once (src/request-worker/pipeline/h2-multiplex.ts).
      ...(allowH2 ? { factory: multiplexingPoolFactory() } : {}),
      keepAliveTimeout: this.opts.keepAliveTimeoutMs ?? 30_000,
      headersTimeout: this.opts.headersTimeoutMs ?? UPSTREAM_SILENCE_TIMEOUT_MS,
      bodyTimeout: this.opts.bodyTimeoutMs ?? UPSTREAM_SILENCE_TIMEOUT_MS,
    });
    this.agents.set(key, agent);
    return agent;
  }

  /**
   * Send one request; resolves with the head, the body follows (./upstream-response.ts). Redirects are
   * never followed. Errors before the head are mapped to AivaultError codes; a body fails with undici's own
   * error (the pipeline maps it).
   */
  async request(req: UpstreamRequest): Promise<UpstreamResponse> {
    const origin = req.port === 443 ? `https://${req.host}` : `https://${req.host}:${req.port}`;
    const headers: string[] = [];
    for (const [n, v] of req.headers) headers.push(n, v);
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.exchange(req, origin, headers);
      } catch (err) {
        if (
          attempt < REFUSED_STREAM_RETRIES &&
          isRefusedStream(err) &&
          replayable(req.body) &&
          !req.signal?.aborted
        ) {
          observer?.refusedRetry();
          continue;
        }
        throw mapUpstreamError(err, req.host, req.signal);
      }
    }
  }

  /** One attempt: resolves with the head, rejects with undici's error if it fails before the head. */
  private exchange(req: UpstreamRequest, origin: string, headers: string[]): Promise<UpstreamResponse> {
    if (req.signal?.aborted) return Promise.reject(req.signal.reason);
    const exchange = new ExchangeHandler(req.signal);
    this.agentFor(req.clientCert).dispatch(
      {
        origin,
        path: req.pathAndQuery,
        method: req.method as Dispatcher.HttpMethod,
        headers,
        body: req.body ?? null,
        // undici reads "not idempotent" (its default for POST) as "never beside another call on a
        // connection": on h2 every POST, i.e. every LLM call, would wait for the stream before it or dial
        // its own connection. It gates nothing else (undici retries nothing here; our one retry is for
        // refused h2 streams, in request()), and HTTP/1.1 connections
        // carry one call at a time regardless (src/request-worker/pipeline/h2-multiplex.ts).
        idempotent: true,
      },
      exchange,
    );
    return exchange.response;
  }

  /** Client identities whose TLS context (private key) this upstream holds now. */
  get clientIdentities(): number {
    return this.identityUsedAt.size;
  }

  private touchIdentity(key: string): void {
    this.identityUsedAt.delete(key); // re-inserted last: the map stays in order of last use
    this.identityUsedAt.set(key, Date.now());
    // Unarmed means nothing else is waiting: the first expiry is this identity's.
    if (!this.identityTimer) this.armIdentityTimer(this.identityIdleMs());
  }

  private identityIdleMs(): number {
    return this.opts.identityIdleMs ?? CLIENT_IDENTITY_IDLE_MS;
  }

  private armIdentityTimer(ms: number): void {
    this.identityTimer = setTimeout(() => this.expireIdentities(), Math.max(0, ms));
    this.identityTimer.unref();
  }

  /** Close every client identity's pool now (the vault was locked); running calls finish first. */
  forgetClientIdentities(): void {
    if (this.identityTimer) clearTimeout(this.identityTimer);
    this.expireIdentities(Infinity);
  }

  private expireIdentities(now = Date.now()): void {
    this.identityTimer = undefined;
    for (const [key, usedAt] of this.identityUsedAt) {
      const due = usedAt + this.identityIdleMs();
      if (due > now) {
        this.armIdentityTimer(due - now); // the oldest still in use: the rest are younger
        return;
      }
      this.identityUsedAt.delete(key);
      const agent = this.agents.get(key);
      this.agents.delete(key);
      void agent?.close().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    if (this.identityTimer) clearTimeout(this.identityTimer);
    this.identityTimer = undefined;
    this.identityUsedAt.clear();
    const agents = [...this.agents.values()];
    this.agents.clear();
    await Promise.all(agents.map((a) => a.destroy().catch(() => undefined)));
  }
}

/**
 * How often a call is sent again after an h2 upstream refused its stream (RST_STREAM REFUSED_STREAM before
 * any response, or a stream past a GOAWAY's last-stream-id, which Node reports the same way). RFC 9113 §8.7:
 * such a request was not processed, so sending it again is safe whatever its method. Once: a server that
 * refuses twice is shedding load, and the caller hears about it.
 */
export const REFUSED_STREAM_RETRIES = 1;

/** Node's http2 error for a stream closed with REFUSED_STREAM (the code name is in the message only). */
export function isRefusedStream(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  return (
    e?.code === 'ERR_HTTP2_STREAM_ERROR' &&
    typeof e.message === 'string' &&
    e.message.includes('NGHTTP2_REFUSED_STREAM')
  );
}

/** A body that can be sent again as it was: none, or bytes (a stream was consumed by the first attempt). */
function replayable(body: UpstreamRequest['body']): boolean {
  return body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array;
}

const UNREACHABLE_MESSAGES: Readonly<Record<string, string>> = Object.freeze({
  UND_ERR_CONNECT_TIMEOUT: 'timed out connecting',
  UND_ERR_HEADERS_TIMEOUT: 'timed out waiting for response headers',
  UND_ERR_BODY_TIMEOUT: 'timed out waiting for the response body',
  UND_ERR_SOCKET: 'connection failed',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'DNS lookup failed',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed',
  ERR_HTTP2_STREAM_ERROR: 'stream reset before the response was complete',
  ERR_HTTP2_STREAM_CANCEL: 'stream cancelled',
  ERR_HTTP2_SESSION_ERROR: 'HTTP/2 session failed',
  ERR_HTTP2_GOAWAY_SESSION: 'HTTP/2 session closed by the upstream',
});

/** Any transport failure → a stable code with a message naming the host, never a header or body. */
export function mapUpstreamError(err: unknown, host: string, signal?: CallAbortSignal): AivaultError {
  if (err instanceof AivaultError) return err;
  const e = err as (Error & { code?: string; cause?: { code?: string } }) | undefined;
  const code = e?.code ?? e?.cause?.code;
  if (code === FORBIDDEN_ADDRESS_CODE || e?.cause?.code === FORBIDDEN_ADDRESS_CODE) {
    return new AivaultError(
      'policy_violation',
      `refused to connect to ${host}: it resolves to a private, loopback, link-local or metadata address`,
    );
  }
  if (signal?.aborted) {
    const reason = signal.reason as unknown;
    if (reason instanceof AivaultError) return reason;
    return new AivaultError('upstream_unreachable', `request to ${host} was cancelled`);
  }
  if (e?.name === 'AbortError' || code === 'UND_ERR_ABORTED') {
    return new AivaultError('upstream_unreachable', `request to ${host} was cancelled`);
  }
  if (
    (typeof code === 'string' && code.startsWith('ERR_TLS')) ||
    /certificate|self[- ]signed/i.test(e?.message ?? '')
  ) {
    return new AivaultError('upstream_unreachable', `TLS handshake with ${host} failed`);
  }
  const why = (code && UNREACHABLE_MESSAGES[code]) ?? 'request failed';
  return new AivaultError(
    'upstream_unreachable',
    `upstream ${host}: ${why}`,
    code ? { cause: code } : undefined,
  );
}

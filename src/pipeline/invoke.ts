/**
 * The imperative shell around the pure broker: plan (catalog + checkRequest) → rate limit → body →
 * secrets → auth injection → undici → stream or buffer → sanitize → audit. Runs inside a request worker
 * (secrets come from the crypto worker over a MessagePort) or in-process (AIVAULTD_DISABLE=1).
 * Never logs, audits or returns a secret value; the KEK is never here.
 */
import type { Dispatcher } from 'undici';
import { AivaultError, toWire, type Result } from '../errors.js';
import type { DevOverrides } from '../config/env.js';
import type { Envelope, HeaderList, Plan, RequestContext } from '../broker/types.js';
import type { AuthInput, AuthOutput } from '../auth/strategy.js';
import { redactUrl } from '../auth/strategy.js';
import { SecretValues } from '../auth/secrets.js';
import type { AuditInput } from '../audit/audit-log.js';
import { isIpLiteral } from '../broker/addresses.js';
import { isId } from '../broker/ids.js';
import { SCOPE_ID_RE } from '../vault/records.js';
import { buildRequestBody } from './request-body.js';
import { applyResponseBlocklist, checkResponseSize, filterUpstreamHeaders } from './sanitize.js';
import type { RateLimiter } from './rate-limit.js';
import type { Upstream } from './upstream.js';
import type { OAuth2Refresher } from './oauth2.js';
import { newScrubStats, type ScrubMatcher } from './scrub.js';
import { createBlocklistStream, isLineStream } from './blocklist-stream.js';
import { scrubberFor, scrubSecretsOf } from './scrub-call.js';

/** Non-streaming calls buffer the whole response; without a policy limit this cap keeps memory bounded. */
export const DEFAULT_MAX_BUFFERED_RESPONSE_BYTES = 64 * 1024 * 1024;

/** Where decrypted secret values come from (crypto worker in the daemon, the Vault in-process). */
export interface SecretSource {
  /** Honoured dev overrides (verified dev vault + requested overrides), else undefined. */
  devOverrides(): Promise<DevOverrides | undefined>;
  /** Secret id → UTF-8 value. Rejects with vault_unavailable when locked. */
  decrypt(secretIds: readonly string[]): Promise<Map<string, string>>;
  /** Replace a secret's value (OAuth2 token write-back). Absent → refreshed tokens cannot be persisted. */
  write?(secretId: string, value: string): Promise<void>;
  /** The stored value's revision (see `valueRevision`), for a compare-and-swap write-back. */
  revision?(secretId: string): Promise<string>;
  /** Write only if the stored value is still at `revision`; false (nothing written) when it changed. */
  writeIfUnchanged?(secretId: string, revision: string, value: string): Promise<boolean>;
  /**
   * Exclusive OAuth2 refresh lease on a secret, shared by every thread of the process (the crypto worker
   * grants it in the daemon): resolves with the value read AFTER the lease was granted; `release` writes
   * the new value (when given) and lets the next waiter in. Absent → a per-thread lock over decrypt/write.
   */
  lease?(secretId: string): Promise<{ readonly value: string; release(value?: string): Promise<void> }>;
}

/** Injected collaborators: the pure broker and auth modules plus the I/O they need. */
export interface PipelineDeps {
  /** Catalog snapshot + checkRequest. */
  plan(envelope: Envelope, context: RequestContext, dev: DevOverrides | undefined): Promise<Result<Plan>>;
  /** createAuth(plan.auth, plan.credentialParams) applied to the request with the credential's secrets. */
  applyAuth(
    plan: Plan,
    input: AuthInput,
    secretsByPlaceholder: Readonly<Record<string, string>>,
  ): Promise<Result<AuthOutput>>;
  /** Extra response header names to drop for this plan (the credential's injected auth headers). */
  injectedHeaders?(plan: Plan): ReadonlySet<string>;
  readonly secrets: SecretSource;
  readonly rateLimiter?: RateLimiter;
  /** One Upstream per distinct dev-override setting (undefined = production). */
  upstream(dev: DevOverrides | undefined): Upstream;
  audit(event: AuditInput): Promise<void>;
  /** OAuth2 token lifecycle (refresh + write-back); required for oauth2 credentials. */
  readonly oauth2?: OAuth2Refresher;
  /** Called when an audit line could not be written (the daemon reports it on stderr). */
  onAuditError?(err: unknown): void;
}

/** What the caller is told about a finished response (no values: a count only). */
export interface ResponseInfo {
  /** Reflected secret values replaced in this response (headers + body). */
  readonly scrubbed: number;
}

/** The output side of a call: streamed (head/chunk/end) or buffered (full). */
export interface ResponseSink {
  head(status: number, headers: HeaderList): void;
  /** Resolves when the consumer can take more (credit-based backpressure). */
  chunk(data: Uint8Array): Promise<void>;
  end(info?: ResponseInfo): void;
  full(status: number, headers: HeaderList, body: Uint8Array, info?: ResponseInfo): void;
}

export interface InvokeCall {
  readonly envelope: Envelope;
  readonly context: RequestContext;
  readonly stream: boolean;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

function throwIfFailed<T>(r: Result<T>): T {
  if (!r.ok) throw r.error;
  return r.value;
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

/**
 * Execute one invocation end to end. Resolves after the sink saw `full` or `end`; rejects with an
 * AivaultError (the caller turns it into an error frame). Exactly one audit event per call.
 */
export async function invokeCapability(
  deps: PipelineDeps,
  call: InvokeCall,
  sink: ResponseSink,
): Promise<void> {
  const started = Date.now();
  const ctx = call.context;
  const audit: { -readonly [K in keyof AuditInput]?: AuditInput[K] } = {
    kind: 'invoke',
    // Caller input reaches the audit log only once it passed its grammar (no control characters).
    ...(isId(call.envelope?.capability) ? { capability: call.envelope.capability } : {}),
    ...(ctx.workspaceId && SCOPE_ID_RE.test(ctx.workspaceId) ? { workspaceId: ctx.workspaceId } : {}),
    ...(ctx.groupId && SCOPE_ID_RE.test(ctx.groupId) ? { groupId: ctx.groupId } : {}),
    ...(ctx.clientIp && isIpLiteral(ctx.clientIp) ? { clientIp: ctx.clientIp } : {}),
  };
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(call.signal?.reason);
  call.signal?.addEventListener('abort', onAbort, { once: true });
  const timer =
    call.timeoutMs !== undefined
      ? setTimeout(
          () =>
            controller.abort(
              new AivaultError('upstream_unreachable', `invocation timed out after ${call.timeoutMs} ms`),
            ),
          call.timeoutMs,
        )
      : undefined;
  /** The final delivery runs after the audit event is written, so a caller that saw the answer can see its audit line. */
  let deliver: (() => void) | undefined;
  /** Secret material of this call, kept only to scrub an error message (computed on error, never logged). */
  const slotsSeen: Readonly<Record<string, string>>[] = [];
  let urlSecrets: readonly string[] = [];
  /** Reflected-secret scrubbing of this call's response (built once the injected values are known). */
  let plan: Plan | undefined;
  let authHeaders: readonly (readonly [string, string])[] = [];
  let scrubber: ScrubMatcher | undefined;
  const scrubStats = newScrubStats();
  try {
    if (ctx.clientIp !== undefined && !isIpLiteral(ctx.clientIp)) {
      throw new AivaultError('invalid_request', 'clientIp must be an IPv4 or IPv6 address', {
        field: 'clientIp',
      });
    }
    const dev = await deps.secrets.devOverrides();
    const planned = throwIfFailed(await deps.plan(call.envelope, ctx, dev));
    plan = planned;
    Object.assign(audit, {
      capability: planned.capabilityId,
      credential: planned.credentialId,
      provider: planned.provider,
      host: planned.host,
      method: planned.method,
      path: planned.path, // no query: query values can carry secrets
    });

    const limit = planned.policy.rateLimitPerMinute;
    if (limit !== undefined) {
      if (!deps.rateLimiter) throw new AivaultError('internal', 'rate limiter unavailable');
      const d = deps.rateLimiter.tryAcquire(planned.capabilityId, limit);
      if (!d.admitted) {
        throw new AivaultError(
          'rate_limited',
          `capability ${planned.capabilityId} is limited to ${limit} calls per minute`,
          {
            retryAfterMs: d.retryAfterMs,
          },
        );
      }
    }

    // Secrets: placeholder → value, only for the duration of auth injection.
    const ids = [...new Set(Object.values(planned.secretRefs))];
    const values = await deps.secrets.decrypt(ids);
    let bySlot: Record<string, string> = {};
    for (const [slot, id] of Object.entries(planned.secretRefs)) {
      const v = values.get(id);
      if (v === undefined) {
        throw new AivaultError(
          'vault_unavailable',
          `secret ${id} for credential ${planned.credentialId} is missing`,
        );
      }
      bySlot[slot] = v;
    }
    values.clear();
    slotsSeen.push(bySlot);
    const oauth2 = 'oauth2' in planned.auth;
    if (oauth2) {
      if (!deps.oauth2) throw new AivaultError('auth_failed', 'oauth2 credentials need the token refresher');
      bySlot = await deps.oauth2.ensure(planned, bySlot, dev, false);
      slotsSeen.push(bySlot);
    }

    /** Build body + auth and send. Called again (fresh body, fresh auth) for the one oauth2 retry. */
    const send = async (slots: Readonly<Record<string, string>>): Promise<Dispatcher.ResponseData> => {
      const body = await buildRequestBody(planned.body, planned.policy.maxRequestBodyBytes);
      let headers: [string, string][] = planned.headers.map(([n, v]) => [n, v]);
      if (body.contentType) {
        headers = headers.filter(([n]) => n !== 'content-type').concat([['content-type', body.contentType]]);
      }
      if (planned.policy.responseBlocklist.length > 0)
        headers = headers.filter(([n]) => n !== 'accept-encoding');
      const authInput: AuthInput = {
        method: planned.method,
        host: planned.host,
        path: planned.path,
        query: planned.query,
        headers,
        body: body.bytes ?? (body.body === undefined ? new Uint8Array(0) : undefined),
      };
      const auth = throwIfFailed(await deps.applyAuth(planned, authInput, slots));
      urlSecrets = auth.urlSecrets;
      authHeaders = auth.setHeaders;
      const set = new Map(auth.setHeaders.map(([n, v]) => [n.toLowerCase(), v] as const));
      headers = headers.filter(([n]) => !set.has(n)).concat([...set]);
      if (body.body !== undefined) headers.push(['content-length', String(body.length)]);
      const path = (auth.pathPrefix ?? '') + planned.path;
      let query = planned.query;
      for (const [n, v] of auth.appendQuery) query += (query ? '&' : '') + `${n}=${v}`;
      if (controller.signal.aborted) throw controller.signal.reason;
      return deps.upstream(dev).request({
        host: planned.host,
        port: planned.port,
        method: planned.method,
        pathAndQuery: query ? `${path}?${query}` : path,
        headers,
        body: body.body as Dispatcher.DispatchOptions['body'],
        signal: controller.signal,
        ...(auth.tls
          ? {
              clientCert: {
                cert: auth.tls.cert,
                key: auth.tls.key,
                ...(auth.tls.ca !== undefined ? { ca: auth.tls.ca } : {}),
              },
            }
          : {}),
      });
    };

    let res = await send(bySlot);
    if (oauth2 && res.statusCode === 401 && deps.oauth2) {
      // One forced refresh + retry: the cached token may have been revoked early. The refresher hands the
      // same slots back when this token itself came from a forced refresh moments ago; then the 401 stands.
      let refreshed: Readonly<Record<string, string>>;
      try {
        refreshed = await deps.oauth2.ensure(planned, bySlot, dev, true);
      } catch (err) {
        await res.body.dump().catch(() => undefined); // free the pooled connection before failing
        throw err;
      }
      if (refreshed !== bySlot) {
        await res.body.dump().catch(() => undefined);
        bySlot = refreshed;
        slotsSeen.push(bySlot);
        res = await send(bySlot);
      }
    }
    audit.status = res.statusCode;
    scrubber = scrubberFor(scrubSecretsOf(planned, slotsSeen, authHeaders));
    const scrub = scrubber;
    const outHeaders = filterUpstreamHeaders(res.headers, deps.injectedHeaders?.(planned)).map(
      ([n, v]): [string, string] => [n, scrub.scrubText(v, scrubStats)],
    );

    try {
      if (call.stream && !planned.policy.bufferResponse) {
        const list = planned.policy.responseBlocklist;
        const redact = list.length > 0 ? createBlocklistStream(list, contentTypeOf(outHeaders)) : undefined;
        // With a blocklist the head waits for the first body bytes, so a body that is not JSON at all
        // fails closed as an error instead of a 200 with a cut body.
        let headSent = false;
        const emit = async (data: Uint8Array): Promise<void> => {
          if (!headSent) {
            headSent = true;
            sink.head(res.statusCode, outHeaders);
          }
          if (data.byteLength > 0) await sink.chunk(data);
        };
        if (!redact) await emit(new Uint8Array(0));
        // Only a possible partial match is held back between chunks (src/pipeline/scrub.ts).
        const stream = scrub.stream(scrubStats);
        for await (const chunk of res.body) {
          const c = chunk as Buffer;
          let data: Uint8Array = new Uint8Array(c.buffer, c.byteOffset, c.byteLength);
          if (redact) data = redact.push(data);
          const out = stream.push(data);
          if (out.byteLength > 0) await emit(out);
          if (controller.signal.aborted) throw controller.signal.reason;
        }
        const tail = stream.push(redact ? redact.end() : new Uint8Array(0));
        await emit(Buffer.concat([tail, stream.end()]));
        deliver = () => sink.end({ scrubbed: scrubStats.count });
      } else {
        const max = planned.policy.maxResponseBodyBytes ?? DEFAULT_MAX_BUFFERED_RESPONSE_BYTES;
        const chunks: Uint8Array[] = [];
        let total = 0;
        for await (const chunk of res.body) {
          total += (chunk as Buffer).byteLength;
          checkResponseSize(total, max);
          chunks.push(chunk as Buffer);
        }
        const whole = concat(chunks, total);
        const list = planned.policy.responseBlocklist;
        const ct = contentTypeOf(outHeaders);
        const sanitized =
          list.length > 0 && isLineStream(ct)
            ? { body: blocklistWhole(list, ct, whole), headers: outHeaders }
            : applyResponseBlocklist(whole, list, outHeaders);
        const body = scrub.scrub(sanitized.body, scrubStats);
        deliver = () => sink.full(res.statusCode, sanitized.headers, body, { scrubbed: scrubStats.count });
      }
    } catch (err) {
      res.body.destroy();
      throw err;
    }
  } catch (err) {
    const e =
      err instanceof AivaultError
        ? err
        : controller.signal.aborted && controller.signal.reason instanceof AivaultError
          ? controller.signal.reason
          : mapLateError(err);
    audit.errorCode = e.code;
    if (!scrubber && plan && slotsSeen.length > 0) {
      scrubber = scrubberFor(scrubSecretsOf(plan, slotsSeen, authHeaders));
    }
    throw scrubError(e, slotsSeen, urlSecrets, scrubber);
  } finally {
    if (timer) clearTimeout(timer);
    call.signal?.removeEventListener('abort', onAbort);
    audit.durationMs = Date.now() - started;
    // An audit write failure must not turn a completed call into an error; it is reported, not hidden.
    await deps.audit(audit as AuditInput).catch((err: unknown) => deps.onAuditError?.(err));
    if (scrubStats.count > 0) await auditScrubbed(deps, audit, scrubStats);
  }
  deliver?.();
}

/** Shortest secret value scrubbed from messages (shorter ones would mangle ordinary words). */
const MIN_SCRUB_CHARS = 4;

/**
 * Defence in depth: no error that leaves the pipeline may carry a credential value (as is, or
 * percent-encoded as it appears in a query or path), whatever layer produced its message.
 */
export function scrubError(
  e: AivaultError,
  slots: readonly Readonly<Record<string, string>>[],
  urlSecrets: readonly string[],
  scrubber?: ScrubMatcher,
): AivaultError {
  if (slots.length === 0 && urlSecrets.length === 0) return e;
  const all = new Set(urlSecrets);
  for (const bySlot of slots) for (const v of SecretValues.from(bySlot).valuesForRedaction()) all.add(v);
  const needles = [...all].filter((v) => v.length >= MIN_SCRUB_CHARS);
  // Encoded forms first (named replacement), then the plain/percent forms of shorter values.
  const scrub = (text: string): string => redactUrl(scrubber ? scrubber.scrubText(text) : text, needles);
  const message = scrub(e.message);
  let details = e.details;
  let changed = message !== e.message;
  if (details) {
    const next: Record<string, string | number | boolean | null> = {};
    for (const [k, v] of Object.entries(details)) {
      next[k] = typeof v === 'string' ? scrub(v) : v;
      if (next[k] !== v) changed = true;
    }
    details = next;
  }
  return changed ? new AivaultError(e.code, message, details) : e;
}

/** One `response.scrubbed` audit event per response that reflected a secret (count + kinds, no value). */
export async function auditScrubbed(
  deps: Pick<PipelineDeps, 'audit' | 'onAuditError'>,
  call: Partial<AuditInput>,
  stats: { readonly count: number; readonly kinds: ReadonlySet<string> },
): Promise<void> {
  const event: AuditInput = {
    kind: 'response.scrubbed',
    ...(call.capability !== undefined ? { capability: call.capability } : {}),
    ...(call.credential !== undefined ? { credential: call.credential } : {}),
    ...(call.provider !== undefined ? { provider: call.provider } : {}),
    ...(call.host !== undefined ? { host: call.host } : {}),
    count: stats.count,
    encodings: [...stats.kinds].sort().join(','),
  };
  await deps.audit(event).catch((err: unknown) => deps.onAuditError?.(err));
}

function contentTypeOf(headers: HeaderList): string | undefined {
  return headers.find(([n]) => n === 'content-type')?.[1];
}

/** SSE / NDJSON bodies that were buffered go through the same line redactor as streamed ones. */
function blocklistWhole(list: readonly string[], ct: string | undefined, body: Uint8Array): Uint8Array {
  const s = createBlocklistStream(list, ct);
  return Buffer.concat([s.push(body), s.end()]);
}

function mapLateError(err: unknown): AivaultError {
  const e = err as { code?: string; name?: string } | undefined;
  if (e?.name === 'AbortError' || e?.code === 'UND_ERR_ABORTED') {
    return new AivaultError('upstream_unreachable', 'invocation cancelled');
  }
  if (typeof e?.code === 'string')
    return new AivaultError('upstream_unreachable', `upstream stream failed (${e.code})`);
  const wire = toWire(err);
  return new AivaultError(wire.error, wire.message);
}

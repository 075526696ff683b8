/**
 * The imperative shell around the pure broker for HTTP calls: authorize (plan → rate limit → secrets →
 * auth, src/request-worker/pipeline/authorize.ts, shared with the WebSocket relay) → body → undici → stream or buffer →
 * sanitize → scrub → audit. Runs inside a request worker
 * (secrets come from the crypto worker over a MessagePort) or in-process (AIVAULTD_DISABLE=1).
 * Never logs, audits or returns a secret value; the KEK is never here.
 */
import { AivaultError, toWire } from '../../core/errors.js';
import type { HeaderList, Plan } from '../../core/broker/types.js';
import type { AuditInput } from '../../stores/audit/audit-log.js';
import { isIpLiteral } from '../../core/broker/addresses.js';
import { isId } from '../../core/broker/ids.js';
import { SCOPE_ID_RE } from '../../stores/vault/records.js';
import { buildRequestBody } from './request-body.js';
import { applyResponseBlocklist, checkResponseSize, filterUpstreamHeaders } from './sanitize.js';
import { newScrubStats, type ScrubMatcher } from './scrub.js';
import { createBlocklistStream, isLineStream } from './blocklist-stream.js';
import { scrubCallError, scrubSecretsOf } from './scrub-call.js';
import { scrubberFor } from './scrubber-cache.js';
import { admit, prepareUpstreamRequest, secretSlots, type AuditDraft } from './authorize.js';
import type { InvokeCall, PipelineDeps, ResponseSink } from './types.js';
import type { CallAbortSignal } from '../../core/threads/call-signal.js';
import type { UpstreamResponse } from './upstream-response.js';

/** Non-streaming calls buffer the whole response; without a policy limit this cap keeps memory bounded. */
export const DEFAULT_MAX_BUFFERED_RESPONSE_BYTES = 64 * 1024 * 1024;

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
  const audit: AuditDraft = {
    kind: 'invoke',
    // Caller input reaches the audit log only once it passed its grammar (no control characters).
    ...(isId(call.envelope?.capability) ? { capability: call.envelope.capability } : {}),
    ...(ctx.workspaceId && SCOPE_ID_RE.test(ctx.workspaceId) ? { workspaceId: ctx.workspaceId } : {}),
    ...(ctx.groupId && SCOPE_ID_RE.test(ctx.groupId) ? { groupId: ctx.groupId } : {}),
    ...(ctx.clientIp && isIpLiteral(ctx.clientIp) ? { clientIp: ctx.clientIp } : {}),
  };
  // The caller's signal serves as is when there is no timeout: a second AbortController chained to it was
  // an EventTarget, a listener added and removed on every call for nothing (issue 12: per-call objects).
  let controller: AbortController | undefined;
  let onAbort: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  if (call.timeoutMs !== undefined) {
    const own = (controller = new AbortController());
    onAbort = (): void => own.abort(call.signal?.reason);
    call.signal?.addEventListener('abort', onAbort, { once: true });
    timer = setTimeout(
      () =>
        own.abort(
          new AivaultError('upstream_unreachable', `invocation timed out after ${call.timeoutMs} ms`),
        ),
      call.timeoutMs,
    );
  }
  const signal: CallAbortSignal | undefined = controller?.signal ?? call.signal;
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
    const planned = await admit(deps, call.envelope, ctx, dev, audit, call.askApproval);
    plan = planned;
    const timing = call.timing;
    const planEnd = timing ? performance.now() : 0;
    if (timing) timing.policyMs = planEnd - timing.start;
    let bySlot = await secretSlots(deps, planned, dev, slotsSeen);
    if (timing) timing.secretMs = performance.now() - planEnd;
    const oauth2 = 'oauth2' in planned.auth;

    /** Build body + auth and send. Called again (fresh body, fresh auth) for the one oauth2 retry. */
    const send = async (slots: Readonly<Record<string, string>>): Promise<UpstreamResponse> => {
      const body = await buildRequestBody(planned.body, planned.policy.maxRequestBodyBytes);
      let headers: [string, string][] = planned.headers.map(([n, v]) => [n, v]);
      if (body.contentType) {
        headers = headers.filter(([n]) => n !== 'content-type').concat([['content-type', body.contentType]]);
      }
      if (planned.policy.responseBlocklist.length > 0)
        headers = headers.filter(([n]) => n !== 'accept-encoding');
      const req = await prepareUpstreamRequest(deps, planned, slots, {
        headers,
        body: body.bytes ?? (body.body === undefined ? new Uint8Array(0) : undefined),
      });
      urlSecrets = req.urlSecrets;
      authHeaders = req.authHeaders;
      if (body.body !== undefined) req.headers.push(['content-length', String(body.length)]);
      if (signal?.aborted) throw signal.reason;
      const sent = timing ? performance.now() : 0;
      const answered = deps.upstream(dev).request({
        host: planned.host,
        port: planned.port,
        method: planned.method,
        pathAndQuery: req.pathAndQuery,
        headers: req.headers,
        body: body.body,
        ...(signal ? { signal } : {}),
        ...(req.clientCert ? { clientCert: req.clientCert } : {}),
      });
      if (!timing) return answered;
      return answered.finally(() => {
        timing.upstreamMs = (timing.upstreamMs ?? 0) + performance.now() - sent;
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
      if (call.stream && !planned.policy.bufferResponse && !smallWholeBody(res, planned)) {
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
        // Only a possible partial match is held back between chunks (src/request-worker/pipeline/scrub.ts).
        const stream = scrub.stream(scrubStats);
        for await (const c of res.body) {
          let data: Uint8Array = new Uint8Array(c.buffer, c.byteOffset, c.byteLength);
          if (redact) data = redact.push(data);
          const out = stream.push(data);
          if (out.byteLength > 0) await emit(out);
          if (signal?.aborted) throw signal.reason;
        }
        const tail = stream.push(redact ? redact.end() : new Uint8Array(0));
        await emit(Buffer.concat([tail, stream.end()]));
        deliver = () => sink.end({ scrubbed: scrubStats.count });
      } else {
        const max = planned.policy.maxResponseBodyBytes ?? DEFAULT_MAX_BUFFERED_RESPONSE_BYTES;
        const whole = await res.body.whole((total) => checkResponseSize(total, max));
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
        : signal?.aborted && signal.reason instanceof AivaultError
          ? signal.reason
          : mapLateError(err);
    audit.errorCode = e.code;
    throw scrubCallError(e, { plan, slotsSeen, urlSecrets, authHeaders, scrubber });
  } finally {
    if (timer) clearTimeout(timer);
    if (onAbort) call.signal?.removeEventListener('abort', onAbort);
    audit.durationMs = Date.now() - started;
    if (call.timing) {
      // admit() replaces the caller's capability string with the catalog id once the plan exists.
      if (audit.provider !== undefined && audit.capability !== undefined)
        call.timing.capability = audit.capability;
      call.timing.scrubbed = scrubStats.count;
    }
    // An audit write failure must not turn a completed call into an error; it is reported, not hidden.
    await deps.audit(audit as AuditInput).catch((err: unknown) => deps.onAuditError?.(err));
    if (scrubStats.count > 0) await auditScrubbed(deps, audit, scrubStats);
  }
  deliver?.();
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

/**
 * Bodies up to this size with a declared length are answered whole on stream calls (see smallWholeBody).
 * At most the port sink's coalescing size (src/core/threads/call-port.ts COALESCE_BYTES), so such a body
 * crosses to the main thread as one message.
 */
const SMALL_WHOLE_BYTES = 64 * 1024;

/**
 * Whether a stream call's response is better answered as one whole message: a declared Content-Length of
 * at most SMALL_WHOLE_BYTES (and within the policy's buffered maximum), not an event stream, not HEAD, no
 * response blocklist (whose streaming and whole forms fail differently on a malformed body). Such a body
 * arrives at once; streaming it cost a head, a chunk and an end message to the main thread plus a credit
 * back — five cross-thread messages per call where one does (issue 12: CPU per request, c=1 latency). The
 * client loses nothing: it gets the same bytes with a Content-Length instead of chunked framing.
 */
function smallWholeBody(res: UpstreamResponse, planned: Plan): boolean {
  if (planned.method === 'HEAD' || planned.policy.responseBlocklist.length > 0) return false;
  const raw = res.headers['content-length'];
  if (typeof raw !== 'string' || !/^\d{1,7}$/.test(raw)) return false;
  const n = Number(raw);
  const max = planned.policy.maxResponseBodyBytes ?? DEFAULT_MAX_BUFFERED_RESPONSE_BYTES;
  if (n > SMALL_WHOLE_BYTES || n > max) return false;
  const ct = res.headers['content-type'];
  return !(typeof ct === 'string' && /^\s*text\/event-stream/i.test(ct));
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

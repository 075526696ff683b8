/**
 * The one authorization path every transport takes before it talks to an upstream: plan (catalog +
 * broker policy) → rate limit (fail closed) → secret values → OAuth2 freshness → auth injection → final
 * path, query, headers and client certificate. invoke.ts (HTTP calls) and request-worker/ws-upstream.ts
 * (WebSocket relays) both call these, so a policy step cannot drift between transports.
 * Runs in a request worker (or in-process); secret values exist only in the returned slots/request and
 * are never logged or audited.
 */
import { AivaultError } from '../../core/errors.js';
import type { DevOverrides } from '../../core/config/env.js';
import type { Envelope, Plan, RequestContext } from '../../core/broker/types.js';
import type { AuthInput, HeaderPair } from '../auth/strategy.js';
import type { AuditInput } from '../../stores/audit/audit-log.js';
import type { ClientCert } from './upstream.js';
import type { AskApproval, PipelineDeps } from './types.js';
import { approvalCaller, approvalScope } from '../../core/broker/approval-caller.js';

/** Fixed note on the audit event of a call admitted uncounted (fleet Redis down, `--fleet-fail-open`). */
export const FAIL_OPEN_NOTE = 'fleet rate limit not applied: Redis unreachable (--fleet-fail-open)';

/** The audit event of a call while it is being filled in. */
export type AuditDraft = { -readonly [K in keyof AuditInput]?: AuditInput[K] };

/**
 * Plan the call, take one rate-limit slot, and — when the capability's policy says `approval` — wait for
 * the operator (`ask`, answered by the daemon's main thread). A call whose transport cannot ask (in-process
 * mode) is refused: an unapproved call is never the safe default. Approval comes after the rate limit, so
 * a caller cannot queue more calls for the operator than its capability's limit allows. A plan with a rate limit and no limiter fails closed
 * (`internal`): admitting uncounted calls is never the safe default. The audit draft gets the planned
 * capability, credential, provider, host, method and path (never the query: its values can be secrets)
 * before the rate limit is checked, so a refused call is audited with what it asked for.
 */
export async function admit(
  deps: Pick<PipelineDeps, 'plan' | 'rateLimiter'>,
  envelope: Envelope,
  context: RequestContext,
  dev: DevOverrides | undefined,
  audit: AuditDraft,
  ask?: AskApproval,
): Promise<Plan> {
  const planned = await deps.plan(envelope, context, dev);
  if (!planned.ok) throw planned.error;
  const plan = planned.value;
  Object.assign(audit, {
    capability: plan.capabilityId,
    credential: plan.credentialId,
    provider: plan.provider,
    host: plan.host,
    method: plan.method,
    path: plan.path,
  });
  const limit = plan.policy.rateLimitPerMinute;
  if (limit !== undefined) {
    if (!deps.rateLimiter) throw new AivaultError('internal', 'rate limiter unavailable');
    const pending = deps.rateLimiter.tryAcquire(plan.capabilityId, limit);
    // The local table answers synchronously (no await on the fast path); fleet admission is a promise.
    const d = pending instanceof Promise ? await pending : pending;
    if (!d.admitted) {
      throw new AivaultError(
        'rate_limited',
        d.unavailable ?? `capability ${plan.capabilityId} is limited to ${limit} calls per minute`,
        { retryAfterMs: d.retryAfterMs, ...(d.unavailable ? { fleet: 'redis_unavailable' } : {}) },
      );
    }
    if (d.bypassed) audit.note = FAIL_OPEN_NOTE;
  }
  const mode = plan.policy.approval;
  if (mode !== undefined) await requireApproval(plan, context, mode, ask);
  return plan;
}

async function requireApproval(
  plan: Plan,
  context: RequestContext,
  mode: 'once' | 'always',
  ask: AskApproval | undefined,
): Promise<void> {
  if (!ask) {
    throw new AivaultError(
      'approval_denied',
      `capability ${plan.capabilityId} needs operator approval, which only aivaultd can ask for`,
    );
  }
  const host = plan.port === 443 ? plan.host : `${plan.host}:${plan.port}`;
  const outcome = await ask({
    capability: plan.capabilityId,
    method: plan.method,
    host,
    path: plan.path,
    bodyBytes: planBodyBytes(plan),
    callerTokenId: context.token?.id ?? '',
    caller: approvalCaller(context),
    scope: approvalScope(plan.policy, plan.credentialId, host),
    mode,
  });
  if (outcome === 'approved') return;
  throw new AivaultError(
    'approval_denied',
    outcome === 'timeout'
      ? `capability ${plan.capabilityId} needs operator approval and none came in time`
      : `the operator denied this call to ${plan.capabilityId}`,
    { outcome },
  );
}

/** Bytes the request body will have (-1 when it is read from a local file later). Never the body. */
function planBodyBytes(plan: Plan): number {
  const b = plan.body;
  if (b.kind === 'none') return 0;
  if (b.kind === 'bytes') return b.data.byteLength;
  if (b.kind === 'file') return -1;
  let n = 0;
  for (const f of b.fields) n += Buffer.byteLength(f.value);
  for (const f of b.files) {
    if (f.contentBase64 === undefined) return -1;
    n += Buffer.byteLength(f.contentBase64, 'base64');
  }
  return n;
}

/**
 * Slot → secret value for the plan's credential, with an OAuth2 access token made fresh. Every slot map
 * seen is pushed onto `seen`, so an error raised later can be scrubbed of all of them.
 */
export async function secretSlots(
  deps: Pick<PipelineDeps, 'secrets' | 'oauth2'>,
  plan: Plan,
  dev: DevOverrides | undefined,
  seen: Readonly<Record<string, string>>[],
): Promise<Readonly<Record<string, string>>> {
  const values = await deps.secrets.decrypt([...new Set(Object.values(plan.secretRefs))]);
  const bySlot: Record<string, string> = {};
  try {
    for (const [slot, id] of Object.entries(plan.secretRefs)) {
      const v = values.get(id);
      if (v === undefined) {
        throw new AivaultError(
          'vault_unavailable',
          `secret ${id} for credential ${plan.credentialId} is missing`,
        );
      }
      bySlot[slot] = v;
    }
  } finally {
    values.clear();
  }
  seen.push(bySlot);
  if (!('oauth2' in plan.auth)) return bySlot;
  if (!deps.oauth2) throw new AivaultError('auth_failed', 'oauth2 credentials need the token refresher');
  const fresh = await deps.oauth2.ensure(plan, bySlot, dev, false);
  if (fresh !== bySlot) seen.push(fresh);
  return fresh;
}

/** The request as it goes upstream, auth applied. Holds secret values: never log or audit it. */
export interface PreparedRequest {
  /** Request headers with the auth headers set (lower-case names, auth replacing same-named ones). */
  readonly headers: [string, string][];
  /** Auth path prefix + policed path + query with the auth parameters appended. */
  readonly pathAndQuery: string;
  /** mTLS client certificate, key and extra CA. */
  readonly clientCert?: ClientCert;
  /** Secret strings as they appear in the URL (for scrubbing errors). */
  readonly urlSecrets: readonly string[];
  /** The headers the auth strategy set (for scrubbing a reflected basic-auth token). */
  readonly authHeaders: readonly HeaderPair[];
}

/**
 * Apply the credential's auth to `request` (headers already adjusted by the transport; `body` as the auth
 * strategy should see it, see AuthInput.body). An auth failure is thrown as is; the caller scrubs it.
 */
export async function prepareUpstreamRequest(
  deps: Pick<PipelineDeps, 'applyAuth'>,
  plan: Plan,
  slots: Readonly<Record<string, string>>,
  request: { readonly headers: readonly HeaderPair[]; readonly body: Uint8Array | undefined },
): Promise<PreparedRequest> {
  const input: AuthInput = {
    method: plan.method,
    host: plan.host,
    path: plan.path,
    query: plan.query,
    headers: request.headers,
    body: request.body,
  };
  const authed = await deps.applyAuth(plan, input, slots);
  if (!authed.ok) throw authed.error;
  const auth = authed.value;
  const set = new Map(auth.setHeaders.map(([n, v]) => [n.toLowerCase(), v] as const));
  const headers: [string, string][] = request.headers
    .filter(([n]) => !set.has(n))
    .map(([n, v]): [string, string] => [n, v])
    .concat([...set]);
  const path = (auth.pathPrefix ?? '') + plan.path;
  let query = plan.query;
  for (const [n, v] of auth.appendQuery) query += (query ? '&' : '') + `${n}=${v}`;
  const tls = auth.tls;
  return {
    headers,
    pathAndQuery: query ? `${path}?${query}` : path,
    ...(tls
      ? { clientCert: { cert: tls.cert, key: tls.key, ...(tls.ca !== undefined ? { ca: tls.ca } : {}) } }
      : {}),
    urlSecrets: auth.urlSecrets,
    authHeaders: auth.setHeaders,
  };
}

/**
 * The pipeline's shared contracts: where secret values come from, the injected collaborators, the OAuth2
 * refresher and the response sink. Types only, in their own module so invoke.ts, oauth2.ts, authorize.ts
 * and the transports depend on these and not on each other (no import cycle). Request worker or in-process.
 */
import type { Result } from '../../core/errors.js';
import type { DevOverrides } from '../../core/config/env.js';
import type { Envelope, HeaderList, Plan, RequestContext } from '../../core/broker/types.js';
import type { AuthInput, AuthOutput } from '../auth/strategy.js';
import type { AuditInput } from '../../stores/audit/audit-log.js';
import type { Admission } from '../../core/threads/rate-limit.js';
import type { Upstream } from './upstream.js';
import type { ApprovalOutcome, ApprovalRequest } from '../../front/approvals.js';
import type { CallAbortSignal } from '../../core/threads/call-signal.js';

/**
 * Ask the operator about one planned call (capability policy `approval`); the daemon's main thread holds
 * the pending list and answers. The request says what will be sent, never a secret.
 */
export type AskApproval = (request: Omit<ApprovalRequest, 'transport'>) => Promise<ApprovalOutcome>;

/** OAuth2 token lifecycle for the pipeline (src/request-worker/pipeline/oauth2.ts builds the real one). */
export interface OAuth2Refresher {
  /**
   * bySlot with the oauth2 secret replaced by a state holding a fresh access token; `bySlot` itself (the
   * same object) when the access token did not change.
   */
  ensure(
    plan: Plan,
    bySlot: Readonly<Record<string, string>>,
    dev: DevOverrides | undefined,
    force: boolean,
  ): Promise<Readonly<Record<string, string>>>;
}

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
  readonly rateLimiter?: Admission;
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
  /**
   * Resolves when the consumer can take more (credit-based backpressure). The sink may still read `data`
   * until the end of the current event-loop turn (it coalesces a turn's chunks and copies them once), so
   * the caller must not modify those bytes afterwards; it may drop its reference at once.
   */
  chunk(data: Uint8Array): Promise<void>;
  end(info?: ResponseInfo): void;
  full(status: number, headers: HeaderList, body: Uint8Array, info?: ResponseInfo): void;
}

export interface InvokeCall {
  readonly envelope: Envelope;
  readonly context: RequestContext;
  readonly stream: boolean;
  readonly timeoutMs?: number;
  readonly signal?: CallAbortSignal;
  /** How this call asks for operator approval (absent: a capability that needs one is refused). */
  readonly askApproval?: AskApproval;
  /** Filled in by the pipeline as the call goes (Server-Timing, /metrics); absent in-process. */
  readonly timing?: CallTiming;
}

/**
 * Where one call's time went (milliseconds, performance.now() clock), filled in by invokeCapability for
 * the request worker's Server-Timing and metrics. Numbers and a catalog id only: never caller text.
 */
export interface CallTiming {
  /** performance.now() when the worker received the call. */
  readonly start: number;
  /** Start → plan done and rate limit taken (includes parsing the envelope / matching a passthrough). */
  policyMs?: number;
  /** Secret values decrypted (cache or crypto worker) and OAuth2 freshness. */
  secretMs?: number;
  /** Sending the upstream request → its response head (connect included; summed over an OAuth2 retry). */
  upstreamMs?: number;
  /** The catalog id the call was planned for (absent when planning failed: never the caller's string). */
  capability?: string;
  /** Reflected secret values replaced in the response. */
  scrubbed?: number;
}

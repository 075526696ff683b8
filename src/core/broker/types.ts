/**
 * The broker's domain model: what is stored (credentials, custom capabilities, policies, bindings),
 * what callers send (Envelope, RequestContext) and what policy produces (Plan). No I/O, no secrets:
 * a Plan names secret ids, never values.
 */
import type { AuthSpec, CapabilityAllow, HttpMethod } from '../registry/types.js';

export type ScopeKind = 'global' | 'workspace' | 'group';

export interface Scope {
  readonly kind: ScopeKind;
  readonly workspaceId?: string;
  readonly groupId?: string;
}

/** Secret metadata as the broker sees it (from the vault; never a value). */
export interface SecretInfo {
  readonly id: string;
  readonly name: string;
  readonly scope: Scope;
  /** Groups a global/workspace secret is attached to: `${workspaceId}/${groupId}` pairs. */
  readonly attachedGroups: readonly { readonly workspaceId: string; readonly groupId: string }[];
  readonly pinnedProvider?: string;
}

export interface Credential {
  readonly id: string;
  readonly provider: string;
  readonly auth: AuthSpec;
  /** Concrete hosts the credential may reach (a per-tenant binding replaces a registry pattern). */
  readonly hosts: readonly string[];
  /** Template placeholder → secret id (`secret` for single-secret credentials). */
  readonly secretRefs: Readonly<Record<string, string>>;
  readonly source: 'registry' | 'custom';
  /** Extra, non-secret auth parameters (e.g. aws region override, oauth client hints). */
  readonly params?: Readonly<Record<string, string>>;
  /**
   * Execution context the credential is bound to (`credential create --workspace-id [--group-id]`): it
   * then serves only calls made in that workspace (any group) or that exact group. Unbound: any context.
   */
  readonly workspaceId?: string;
  readonly groupId?: string;
  readonly createdAtMs: number;
  /**
   * Registry credential alternative this credential is (registry/<provider>.json `credentialAlternatives`);
   * then it serves only `capabilities`, is preferred by `priority`, and `upstreamPathPrefix` is prepended
   * to the request path upstream. All four come from the compiled registry, never from disk.
   */
  readonly alternative?: string;
  readonly capabilities?: readonly string[];
  readonly priority?: number;
  readonly upstreamPathPrefix?: string;
}

export interface Capability {
  readonly id: string;
  readonly provider: string;
  readonly allow: CapabilityAllow;
  readonly source: 'registry' | 'custom';
  /** Custom capabilities are created against one credential. */
  readonly credentialId?: string;
}

export interface CapabilityPolicy {
  readonly capabilityId: string;
  readonly rateLimitPerMinute?: number;
  readonly maxRequestBodyBytes?: number;
  readonly maxResponseBodyBytes?: number;
  /** JSON field names redacted from response bodies. */
  readonly responseBlocklist?: readonly string[];
  /** Calls wait for an operator's approval (src/front/approvals.ts). */
  readonly approval?: 'once' | 'always';
}

export interface Binding {
  readonly capabilityId: string;
  /** `vault:secret:<id>` */
  readonly secretRef: string;
  readonly scope: Scope;
  readonly consumer?: string;
}

/** The broker state the policy engine reads (store + compiled registry merged by the catalog). */
export interface BrokerSnapshot {
  readonly credentials: ReadonlyMap<string, Credential>;
  /** Custom + registry capabilities by id. */
  readonly capabilities: ReadonlyMap<string, Capability>;
  readonly policies: ReadonlyMap<string, CapabilityPolicy>;
  readonly bindings: readonly Binding[];
  readonly secrets: ReadonlyMap<string, SecretInfo>;
}

export type HeaderList = readonly (readonly [string, string])[];

export interface MultipartField {
  readonly name: string;
  readonly value: string;
}
export interface MultipartFile {
  readonly name: string;
  /** Local path read by the broker (host-side), or inline base64 content. */
  readonly path?: string;
  readonly contentBase64?: string;
  readonly filename?: string;
  readonly contentType?: string;
}

export interface EnvelopeRequest {
  readonly method: string;
  readonly path: string;
  readonly headers?: HeaderList;
  /** UTF-8 text body. */
  readonly body?: string;
  /** Raw body as base64 (binary-safe alternative to `body`). */
  readonly bodyBase64?: string;
  /**
   * Raw body bytes, for binary transports: a msgpack frame's bin field, and the `/v/` passthrough inside
   * the daemon (the request's bytes as they came, without a base64 round trip). JSON cannot carry it.
   */
  readonly bodyBytes?: Uint8Array;
  readonly multipart?: readonly MultipartField[];
  readonly multipartFiles?: readonly MultipartFile[];
  readonly bodyFilePath?: string;
}

export interface Envelope {
  readonly capability: string;
  readonly credential?: string;
  readonly request: EnvelopeRequest;
}

export interface RequestContext {
  readonly workspaceId?: string;
  readonly groupId?: string;
  readonly clientIp?: string;
  readonly consumer?: string;
  /**
   * True only when the caller is the daemon's owner (private 0600 socket) or the in-process CLI: then
   * bodyFilePath / multipartFiles[].path may name local files. Never set for HTTP or --shared peers.
   */
  readonly localFiles?: boolean;
  /** Set when the call came with a proxy token: restricts capabilities and may pin a credential. */
  readonly token?: {
    /** The token's id (never the token): keys `once` approvals per caller. */
    readonly id?: string;
    readonly capabilities: readonly string[];
    readonly credential?: string;
  };
  /**
   * Set by the HTTPS proxy (daemon main thread) on the calls it starts: their requests take the `/v/`
   * passthrough form, so the form alone cannot tell the transport. A label for approvals and metrics only.
   */
  readonly via?: 'https-proxy';
  /**
   * Set by the unix-socket front on every call (socket clients cannot state it: frames.ts accepts only
   * workspaceId, groupId and clientIp): the connection's id in this daemon. Keys `once` approvals of
   * callers that carry no token (core/broker/approval-caller.ts).
   */
  readonly socketConnection?: string;
}

export type PlanBody =
  | { readonly kind: 'none' }
  | { readonly kind: 'bytes'; readonly data: Uint8Array }
  | {
      readonly kind: 'multipart';
      readonly fields: readonly MultipartField[];
      readonly files: readonly MultipartFile[];
    }
  | { readonly kind: 'file'; readonly path: string };

export interface EffectivePolicy {
  readonly rateLimitPerMinute?: number;
  readonly maxRequestBodyBytes?: number;
  readonly maxResponseBodyBytes?: number;
  readonly responseBlocklist: readonly string[];
  /** True when a response policy needs the whole body (blocklist / max response size): buffer, don't stream. */
  readonly bufferResponse: boolean;
  /** Each call waits for an operator's approval (`once`: remembered per caller for a while, approval-caller.ts). */
  readonly approval?: 'once' | 'always';
}

/** A fully checked request, ready for auth injection and transport. Contains no secret values. */
export interface Plan {
  readonly capabilityId: string;
  readonly credentialId: string;
  readonly provider: string;
  readonly method: HttpMethod;
  readonly host: string;
  readonly port: number;
  /** Normalized path (no query). */
  readonly path: string;
  /** Raw query string without the leading `?` ('' when none). */
  readonly query: string;
  /** Caller headers after reserved/auth-class stripping, lower-cased names. */
  readonly headers: HeaderList;
  readonly body: PlanBody;
  readonly auth: AuthSpec;
  readonly secretRefs: Readonly<Record<string, string>>;
  /** Slot → secret name (shown in `[redacted:<NAME>]` when a response reflects a value). */
  readonly secretNames?: Readonly<Record<string, string>>;
  readonly credentialParams: Readonly<Record<string, string>>;
  readonly policy: EffectivePolicy;
}

export type { AuthSpec, CapabilityAllow, HttpMethod };

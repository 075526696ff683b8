/**
 * The auth strategy contract: `create(spec, params)` validates and compiles once, and returns the per-request
 * closure `(input, secrets) → Promise<Result<AuthOutput>>`. Strategies do no I/O and never log secrets.
 *
 * Sync/async decision: every closure is async. The AWS SigV4 signer (@smithy/signature-v4) is Promise-based,
 * and one uniform contract keeps the caller free of sync/async branches; the microtask is noise next to the
 * upstream request it precedes. All other strategies resolve immediately.
 */
import type { Result } from '../../core/errors.js';
import type { AuthSpec, AuthType } from '../../core/registry/types.js';
import type { SecretValues } from './secrets.js';

export type { SecretValues };

export type HeaderPair = readonly [name: string, value: string];

/** What a strategy sees of the outgoing request (after policy; before auth). */
export interface AuthInput {
  readonly method: string;
  /** Upstream host (default port, so this is also the Host header value). */
  readonly host: string;
  /** Normalized request path as it goes on the wire (no query, no auth path prefix). */
  readonly path: string;
  /** Raw query without the leading `?` ('' when none). */
  readonly query: string;
  /** Request headers, lower-case names (after reserved/auth-class stripping). */
  readonly headers: readonly HeaderPair[];
  /**
   * The exact request body bytes; `new Uint8Array(0)` for a request without a body.
   * `undefined` means the body is streamed/read from a file and not available here: aws_sigv4 then signs
   * `UNSIGNED-PAYLOAD` and hmac fails closed.
   */
  readonly body: Uint8Array | undefined;
}

export interface TlsClientAuth {
  /** PEM client certificate (chain). */
  readonly cert: string;
  /** PEM private key. */
  readonly key: string;
  /** Optional PEM CA bundle to verify the server with, in addition to the defaults decided by the transport. */
  readonly ca?: string;
}

/**
 * What the transport applies. Contains secret values: never log or audit it; use `redactUrl` with
 * `urlSecrets` for anything printed.
 */
export interface AuthOutput {
  /** Headers to set (lower-case names), replacing any of the same name. */
  readonly setHeaders: readonly HeaderPair[];
  /** Query parameters to append, ALREADY percent-encoded (RFC 3986): join as `name=value` with `&`. */
  readonly appendQuery: readonly HeaderPair[];
  /** Path prefix to prepend (path auth, e.g. `/bot123:abc`), already encoded. */
  readonly pathPrefix?: string;
  /** Client certificate for mutual TLS. */
  readonly tls?: TlsClientAuth;
  /** Secret strings exactly as they appear in the URL (query values, path substitutions), for redaction. */
  readonly urlSecrets: readonly string[];
}

/** Non-secret credential parameters (e.g. aws `region`/`service` overrides). */
export type AuthParams = Readonly<Record<string, string>>;

/** Injected environment; tests pin the clock. */
export interface AuthEnv {
  /** Epoch milliseconds. Defaults to Date.now. */
  readonly now?: () => number;
}

export type AuthApply = (input: AuthInput, secrets: SecretValues) => Promise<Result<AuthOutput>>;

/** The body of one variant of AuthSpec: `AuthSpecBody<'header'>` is `HeaderTemplate`. */
export type AuthSpecBody<K extends AuthType> = AuthSpec extends infer S
  ? S extends { readonly [P in K]: infer V }
    ? V
    : never
  : never;

export interface AuthStrategy<K extends AuthType> {
  readonly type: K;
  /** Validate + compile once. Fails closed (auth_failed) on a malformed spec. */
  create(spec: AuthSpecBody<K>, params: AuthParams, env?: AuthEnv): Result<AuthApply>;
  /** Lower-case header names this spec injects (callers may not supply them). `[]` on a malformed spec. */
  headerNames(spec: AuthSpecBody<K>): readonly string[];
  /** Query parameter names this spec injects (decoded). */
  queryNames(spec: AuthSpecBody<K>): readonly string[];
}

export type AuthStrategies = { readonly [K in AuthType]: AuthStrategy<K> };

export const EMPTY_OUTPUT: AuthOutput = Object.freeze({
  setHeaders: Object.freeze([]),
  appendQuery: Object.freeze([]),
  urlSecrets: Object.freeze([]),
});

/** Apply path prefix and appended query to a target: `{path, query}` as they go on the wire. */
export function applyAuthTarget(
  path: string,
  query: string,
  output: AuthOutput,
): { readonly path: string; readonly query: string } {
  const finalPath = output.pathPrefix === undefined ? path : output.pathPrefix + path;
  if (output.appendQuery.length === 0) return { path: finalPath, query };
  let appended = '';
  for (const [name, value] of output.appendQuery) {
    appended += (appended.length === 0 ? '' : '&') + name + '=' + value;
  }
  return { path: finalPath, query: query.length === 0 ? appended : `${query}&${appended}` };
}

export const REDACTION_MARK = '[REDACTED]';

/** The secret strings of an output that can appear in a URL (feed to `redactUrl`). */
export function secretValuesForRedaction(output: AuthOutput): readonly string[] {
  return output.urlSecrets;
}

/**
 * Replace every secret (as given, and in its percent-encoded and decoded forms) in a URL or any printed text.
 * Pass `output.urlSecrets`, or `secrets.valuesForRedaction()` to redact every credential value.
 */
export function redactUrl(url: string, secrets: Iterable<string>): string {
  const needles = new Set<string>();
  for (const secret of secrets) {
    if (secret.length === 0) continue;
    needles.add(secret);
    needles.add(encodeURIComponent(secret));
    try {
      needles.add(decodeURIComponent(secret));
    } catch {
      // not an encoded string
    }
  }
  needles.delete('');
  // Longest first, so a secret that contains another is replaced whole.
  let out = url;
  for (const needle of [...needles].sort((a, b) => b.length - a.length)) {
    out = out.split(needle).join(REDACTION_MARK);
  }
  return out;
}

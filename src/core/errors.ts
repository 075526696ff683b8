/**
 * The stable error model. Codes are permanent: never rename or reuse one. One code per situation, the same
 * on every transport (socket, HTTP, WebSocket, CLI); README.md's error table lists them in this order
 * (test/unit/errors.test.ts checks).
 * Across threads and sockets only `{ error, message, details? }` travels (structured clone and msgpack
 * drop the class); receivers rebuild with `fromWire` and match on `code`, never on `instanceof`.
 */

export type ErrorCode =
  | 'policy_violation'
  | 'capability_not_found'
  | 'credential_not_found'
  | 'credential_ambiguous'
  | 'vault_unavailable'
  | 'auth_failed'
  | 'oauth_refresh_required'
  | 'upstream_unreachable'
  | 'token_invalid'
  | 'invalid_request'
  | 'operator_auth_required'
  | 'rate_limited'
  | 'approval_denied'
  | 'body_too_large'
  | 'not_found'
  | 'conflict'
  | 'storage_corrupt'
  | 'usage'
  | 'daemon_unavailable'
  | 'daemon_busy'
  | 'internal';

export interface ErrorInfo {
  /** HTTP status used by the loopback HTTP routes. */
  readonly http: number;
  /** CLI exit code: 1 = failed, 2 = usage. */
  readonly exit: 1 | 2;
  readonly title: string;
}

/** A new code does not compile until it is given a row here. */
export const ERRORS: Readonly<Record<ErrorCode, ErrorInfo>> = Object.freeze({
  policy_violation: { http: 403, exit: 1, title: 'Request blocked by capability policy' },
  capability_not_found: { http: 404, exit: 1, title: 'Unknown capability' },
  credential_not_found: { http: 404, exit: 1, title: 'No credential available' },
  credential_ambiguous: { http: 409, exit: 1, title: 'More than one credential matches' },
  vault_unavailable: { http: 503, exit: 1, title: 'Vault is locked or unavailable' },
  auth_failed: { http: 502, exit: 1, title: 'Auth could not be applied' },
  oauth_refresh_required: { http: 401, exit: 1, title: 'OAuth token refresh failed' },
  upstream_unreachable: { http: 502, exit: 1, title: 'Upstream could not be reached' },
  token_invalid: { http: 401, exit: 1, title: 'Token invalid or expired' },
  invalid_request: { http: 400, exit: 1, title: 'Invalid request' },
  operator_auth_required: { http: 401, exit: 1, title: 'Operator authentication required' },
  rate_limited: { http: 429, exit: 1, title: 'Rate limit exceeded' },
  approval_denied: {
    http: 403,
    exit: 1,
    title: 'The operator denied the call, or no one approved it in time',
  },
  body_too_large: { http: 413, exit: 1, title: 'Body exceeds the policy limit' },
  not_found: { http: 404, exit: 1, title: 'Not found' },
  conflict: { http: 409, exit: 1, title: 'Already exists' },
  storage_corrupt: { http: 500, exit: 1, title: 'A vault file is corrupt or was tampered with' },
  usage: { http: 400, exit: 2, title: 'Invalid command usage' },
  daemon_unavailable: { http: 503, exit: 1, title: 'aivaultd is not reachable' },
  // Capacity, not policy: `rate_limited` is only ever a capability's per-minute limit.
  daemon_busy: { http: 503, exit: 1, title: 'aivaultd is at its concurrency limit; retry' },
  internal: { http: 500, exit: 1, title: 'Internal error' },
});

export const ERROR_CODES = Object.freeze(Object.keys(ERRORS) as ErrorCode[]);

export type ErrorDetails = Readonly<Record<string, string | number | boolean | null>>;

export interface WireError {
  error: ErrorCode;
  message: string;
  details?: ErrorDetails;
}

const BRAND = Symbol.for('aivault.error');

export class AivaultError extends Error {
  readonly code: ErrorCode;
  readonly details: ErrorDetails | undefined;
  readonly [BRAND] = true;

  constructor(code: ErrorCode, message: string, details?: ErrorDetails) {
    super(message);
    this.name = 'AivaultError';
    this.code = code;
    this.details = details;
  }

  static override [Symbol.hasInstance](value: unknown): boolean {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }

  toJSON(): WireError {
    return toWire(this);
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERRORS, value);
}

export function isAivaultError(value: unknown): value is AivaultError {
  return value instanceof AivaultError;
}

/** Anything thrown → the wire shape. Unknown errors become `internal` without leaking their text. */
export function toWire(err: unknown): WireError {
  if (isAivaultError(err)) {
    const out: WireError = { error: err.code, message: err.message };
    if (err.details !== undefined) out.details = err.details;
    return out;
  }
  return { error: 'internal', message: 'internal error' };
}

export function fromWire(wire: unknown): AivaultError {
  if (typeof wire === 'object' && wire !== null) {
    const w = wire as Record<string, unknown>;
    if (isErrorCode(w.error) && typeof w.message === 'string') {
      const details =
        typeof w.details === 'object' && w.details !== null ? (w.details as ErrorDetails) : undefined;
      return new AivaultError(w.error, w.message, details);
    }
  }
  return new AivaultError('internal', 'malformed error');
}

/** Result type for pure functions that must not throw on a policy outcome. */
export type Result<T, E = AivaultError> = { ok: true; value: T } | { ok: false; error: E };
export const ok = <T>(value: T): Result<T, never> => ({ ok: true, value });
export const fail = (code: ErrorCode, message: string, details?: ErrorDetails): Result<never> => ({
  ok: false,
  error: new AivaultError(code, message, details),
});

/** Unwrap a Result at an imperative edge. */
export function unwrap<T>(result: Result<T>): T {
  if (result.ok) return result.value;
  throw result.error;
}

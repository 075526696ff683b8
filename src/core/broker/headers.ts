/**
 * Header policy for both directions. Request side: validate, strip reserved/hop-by-hop headers,
 * refuse caller-supplied auth-class headers. Response side: drop framing and auth-class headers.
 * Pure; name sets are built once at module load (null-prototype lookups, undici-style).
 */
import { fail, ok, type Result } from '../errors.js';
import type { AuthSpec, HeaderList } from './types.js';

export const MAX_HEADERS = 100;
export const MAX_HEADER_NAME_LENGTH = 256;
export const MAX_HEADER_VALUE_LENGTH = 16 * 1024;

/**
 * Silently stripped from caller requests: hop-by-hop and framing headers the transport owns
 * (content-length is recomputed, host comes from policy), plus proxy/forwarding headers that could
 * spoof the client's identity to the upstream. `expect` is dropped so a caller can't stall the pool.
 */
const RESERVED_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'content-length',
  'expect',
  'proxy-connection',
  'forwarded',
  'via',
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'cf-connecting-ip',
]);
const RESERVED_REQUEST_PREFIXES: readonly string[] = ['sec-websocket-', 'proxy-', 'x-forwarded-'];

/**
 * Auth-class names: carrying a credential of some kind. A caller sending one is trying to override or
 * smuggle auth, so the request is REFUSED (policy_violation) rather than silently cleaned; silent
 * dropping would hide an attack and leave callers guessing why auth "didn't work". Cookies count:
 * they are session credentials and the broker owns the upstream identity.
 */
const AUTH_CLASS_REQUEST_HEADERS: ReadonlySet<string> = new Set([
  'authorization',
  'proxy-authorization',
  'x-api-key',
  'api-key',
  'x-goog-api-key',
  'x-auth-token',
  'x-access-token',
  'x-amz-security-token',
  'x-amz-date',
  'x-amz-content-sha256',
  'cookie',
  'cookie2',
]);

/** Removed from upstream responses: hop-by-hop/framing (the broker re-frames) and auth-class. */
const FILTERED_RESPONSE_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'transfer-encoding',
  'content-length',
  'te',
  'trailer',
  'upgrade',
  'set-cookie',
  'set-cookie2',
  'authorization',
  'proxy-authorization',
  'proxy-authenticate',
  // www-authenticate is removed too: challenges can echo realms/token hints, and auth retries are the
  // broker's job (oauth refresh), not the caller's. The status code still tells the caller it was a 401.
  'www-authenticate',
  'authentication-info',
  'proxy-authentication-info',
  'x-api-key',
  'api-key',
  'x-goog-api-key',
  'x-auth-token',
  'x-access-token',
  'x-amz-security-token',
  'x-csrf-token',
]);
const FILTERED_RESPONSE_PREFIXES: readonly string[] = ['proxy-'];

/** RFC 9110 tchar table (128 entries, built once). */
const TCHAR: Uint8Array = (() => {
  const table = new Uint8Array(128);
  const chars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  for (let i = 0; i < chars.length; i++) table[chars.charCodeAt(i)] = 1;
  return table;
})();

export function isValidHeaderName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_HEADER_NAME_LENGTH) return false;
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (code >= 128 || TCHAR[code] !== 1) return false;
  }
  return true;
}

/** Visible ASCII, space, tab and obs-text; never CR, LF, NUL or other controls. */
export function isValidHeaderValue(value: string): boolean {
  if (value.length > MAX_HEADER_VALUE_LENGTH) return false;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if ((code < 0x20 && code !== 0x09) || code === 0x7f || code > 0xff) return false;
  }
  return true;
}

function hasPrefix(name: string, prefixes: readonly string[]): boolean {
  for (const p of prefixes) if (name.startsWith(p)) return true;
  return false;
}

export function isReservedRequestHeader(name: string): boolean {
  return RESERVED_REQUEST_HEADERS.has(name) || hasPrefix(name, RESERVED_REQUEST_PREFIXES);
}

export function isAuthClassHeader(name: string): boolean {
  return AUTH_CLASS_REQUEST_HEADERS.has(name);
}

const injectedCache = new WeakMap<object, ReadonlySet<string>>();

/**
 * Lower-cased header names an auth spec writes. Cached per (frozen) auth object so the per-request
 * cost is one WeakMap lookup.
 */
export function injectedHeaderNames(auth: AuthSpec): ReadonlySet<string> {
  const cached = injectedCache.get(auth);
  if (cached) return cached;
  const names = new Set<string>();
  if ('header' in auth) names.add(auth.header.header_name.toLowerCase());
  else if ('multi_header' in auth) for (const h of auth.multi_header) names.add(h.header_name.toLowerCase());
  else if ('basic' in auth) names.add('authorization');
  else if ('oauth2' in auth) names.add((auth.oauth2.inject?.header_name ?? 'authorization').toLowerCase());
  else if ('aws_sigv4' in auth) {
    for (const n of ['authorization', 'x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256']) {
      names.add(n);
    }
  } else if ('hmac' in auth) names.add(auth.hmac.header_name.toLowerCase());
  const frozen: ReadonlySet<string> = names;
  injectedCache.set(auth, frozen);
  return frozen;
}

export interface RequestHeaderOptions {
  /** Header names the credential's auth injects (see injectedHeaderNames). */
  readonly injected: ReadonlySet<string>;
  /** Multipart bodies: the broker sets Content-Type (with its boundary); the caller's is dropped. */
  readonly multipart: boolean;
}

/**
 * Validate and clean caller headers. Invalid name/value → invalid_request; auth-class or injected
 * name → policy_violation; reserved → dropped; names listed in a caller `Connection` header are
 * hop-by-hop by definition and dropped as well. Output names are lower-case; order is preserved.
 */
export function sanitizeRequestHeaders(
  headers: HeaderList,
  options: RequestHeaderOptions,
): Result<HeaderList> {
  if (headers.length === 0) return ok(headers);
  if (headers.length > MAX_HEADERS) return fail('invalid_request', 'request.headers has too many entries');
  let connectionListed: Set<string> | undefined;
  for (const [rawName, value] of headers) {
    if (!isValidHeaderName(rawName))
      return fail('invalid_request', 'request.headers has an invalid header name');
    if (!isValidHeaderValue(value)) {
      return fail('invalid_request', `request.headers value for ${rawName.toLowerCase()} is invalid`);
    }
    const name = rawName.toLowerCase();
    if (AUTH_CLASS_REQUEST_HEADERS.has(name) || options.injected.has(name)) {
      return fail('policy_violation', `request header ${name} is broker-owned (auth-class)`, {
        header: name,
      });
    }
    if (name === 'connection') {
      connectionListed ??= new Set();
      for (const token of value.split(',')) {
        const t = token.trim().toLowerCase();
        if (t) connectionListed.add(t);
      }
    }
  }
  const out: (readonly [string, string])[] = [];
  for (const [rawName, value] of headers) {
    const name = rawName.toLowerCase();
    if (isReservedRequestHeader(name)) continue;
    if (connectionListed?.has(name)) continue;
    if (options.multipart && name === 'content-type') continue;
    out.push([name, value]);
  }
  return ok(out);
}

export function isFilteredResponseHeader(name: string): boolean {
  const lower = name.toLowerCase();
  return FILTERED_RESPONSE_HEADERS.has(lower) || hasPrefix(lower, FILTERED_RESPONSE_PREFIXES);
}

/**
 * Drop hop-by-hop/framing and auth-class headers from an upstream response (plus any header the
 * response's own `Connection` nominates, and optionally the credential's injected names). Lower-cases
 * names. Content-Length is removed because the broker may rewrite the body (blocklist redaction).
 */
export function filterResponseHeaders(
  headers: Iterable<readonly [string, string]>,
  extraBlocked?: ReadonlySet<string>,
): [string, string][] {
  const list = Array.isArray(headers) ? (headers as readonly (readonly [string, string])[]) : [...headers];
  let connectionListed: Set<string> | undefined;
  for (const [name, value] of list) {
    if (name.toLowerCase() === 'connection') {
      connectionListed ??= new Set();
      for (const token of value.split(',')) connectionListed.add(token.trim().toLowerCase());
    }
  }
  const out: [string, string][] = [];
  for (const [name, value] of list) {
    const lower = name.toLowerCase();
    if (FILTERED_RESPONSE_HEADERS.has(lower) || hasPrefix(lower, FILTERED_RESPONSE_PREFIXES)) continue;
    if (connectionListed?.has(lower) || extraBlocked?.has(lower)) continue;
    out.push([lower, value]);
  }
  return out;
}

/**
 * Request-path normalization and prefix matching. Pure: no I/O, no secrets.
 * The caller's path is decoded exactly once, checked segment by segment, and re-encoded in one
 * canonical form, so the string policy compares is the string the upstream receives.
 */
import { fail, ok, type Result } from '../errors.js';

export interface NormalizedPath {
  /** Canonical, percent-encoded path starting with '/'. */
  readonly path: string;
  /** Raw query string without the leading '?' ('' when none). Validated, not re-encoded. */
  readonly query: string;
}

export const MAX_PATH_LENGTH = 8192;

/**
 * Bytes left literal when re-encoding a decoded segment: RFC 3986 unreserved + sub-delims + ':' '@'.
 * A 128-entry table built once; everything else is emitted as uppercase %XX.
 */
const SEGMENT_SAFE: Uint8Array = (() => {
  const table = new Uint8Array(128);
  const safe = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@";
  for (let i = 0; i < safe.length; i++) table[safe.charCodeAt(i)] = 1;
  return table;
})();

const HEX = '0123456789ABCDEF';
const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const utf8Encoder = new TextEncoder();

/**
 * Escapes that must not survive one round of decoding: a segment that still contains `%2e`, `%2f`,
 * `%5c` or `%00` after decoding was double-encoded, and a server that decodes again would see a dot,
 * separator or NUL the policy never saw.
 */
const DOUBLE_ENCODED = /%(?:2e|2f|5c|00)/i;

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

function encodeSegment(decoded: string): string {
  // Fast path: most segments are already canonical; return them without rebuilding the string.
  let first = 0;
  while (first < decoded.length) {
    const code = decoded.charCodeAt(first);
    if (code >= 128 || SEGMENT_SAFE[code] !== 1) break;
    first++;
  }
  if (first === decoded.length) return decoded;
  let out = decoded.slice(0, first);
  for (let i = first; i < decoded.length; i++) {
    const code = decoded.charCodeAt(i);
    if (code < 128 && SEGMENT_SAFE[code] === 1) {
      out += decoded[i];
      continue;
    }
    // Non-ASCII: encode the UTF-8 bytes of the whole code point.
    const cp = decoded.codePointAt(i) ?? code;
    const bytes = utf8Encoder.encode(String.fromCodePoint(cp));
    for (const b of bytes) out += `%${HEX[b >> 4]}${HEX[b & 15]}`;
    if (cp > 0xffff) i++;
  }
  return out;
}

/** One raw segment → decoded text, or an error code + reason. */
function decodeSegment(raw: string): Result<string> {
  if (!raw.includes('%')) return ok(raw); // fast path: most API paths carry no escapes
  const bytes: number[] = [];
  let ascii = true;
  for (let i = 0; i < raw.length; i++) {
    const code = raw.charCodeAt(i);
    if (code !== 0x25 /* % */) {
      bytes.push(code); // raw chars were already checked to be printable ASCII
      continue;
    }
    const hi = hexValue(raw.charCodeAt(i + 1));
    const lo = hexValue(raw.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return fail('invalid_request', 'request.path has a malformed percent-escape');
    const byte = (hi << 4) | lo;
    if (byte >= 0x80) ascii = false;
    bytes.push(byte);
    i += 2;
  }
  // ASCII-only escapes (%20, %3A…) are the common case; TextDecoder costs microseconds per call in
  // Node 20, so it is used only when a multi-byte UTF-8 sequence has to be validated.
  if (ascii) return ok(String.fromCharCode(...bytes));
  try {
    return ok(utf8Decoder.decode(new Uint8Array(bytes)));
  } catch {
    return fail('invalid_request', 'request.path decodes to invalid UTF-8');
  }
}

/** True for '.', '..', '...', the Tomcat-style '..;param' forms servers collapse to '..', and ';x'. */
function isDotSegment(decoded: string): boolean {
  const semi = decoded.indexOf(';');
  const core = (semi === -1 ? decoded : decoded.slice(0, semi)).trim();
  // ';x' has an empty core: servers that strip path parameters would see an empty segment (`//`).
  if (core.length === 0) return semi !== -1;
  for (let i = 0; i < core.length; i++) if (core.charCodeAt(i) !== 0x2e) return false;
  return true;
}

function validateQuery(query: string): Result<string> {
  for (let i = 0; i < query.length; i++) {
    const code = query.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) {
      return fail('policy_violation', 'request.path query contains a control character');
    }
    if (code > 0x7e || code === 0x20) {
      return fail('invalid_request', 'request.path query must be percent-encoded ASCII');
    }
    if (code === 0x25) {
      const hi = hexValue(query.charCodeAt(i + 1));
      const lo = hexValue(query.charCodeAt(i + 2));
      if (hi < 0 || lo < 0)
        return fail('invalid_request', 'request.path query has a malformed percent-escape');
      const byte = (hi << 4) | lo;
      if (byte < 0x20 || byte === 0x7f) {
        return fail('policy_violation', 'request.path query contains an encoded control character');
      }
      i += 2;
    }
  }
  return ok(query);
}

/**
 * Split, decode once, validate and canonically re-encode a caller path.
 *
 * Decisions (fail closed):
 * - must start with '/'; a '#' fragment is refused (never sent upstream, only confuses matching);
 * - raw characters must be printable ASCII: non-ASCII must arrive percent-encoded (UTF-8), and is
 *   accepted after decoding if it is valid UTF-8, then re-encoded;
 * - `..`/`.` segments (raw, `%2e`-encoded, or `..;x`), `%2f`/`%5c` (encoded separators), backslashes,
 *   empty segments (`//`), control characters (raw or `%00`/`%0a`…) and double-encoded dots/separators
 *   → policy_violation. A single trailing '/' is kept.
 *
 * @example
 * normalizePath('/v1/caf%c3%a9?x=1'); // ok({ path: '/v1/caf%C3%A9', query: 'x=1' })
 */
export function normalizePath(raw: string): Result<NormalizedPath> {
  if (typeof raw !== 'string' || raw.length === 0) return fail('invalid_request', 'request.path is required');
  if (raw.length > MAX_PATH_LENGTH) return fail('invalid_request', 'request.path is too long');
  const q = raw.indexOf('?');
  const rawPath = q === -1 ? raw : raw.slice(0, q);
  const rawQuery = q === -1 ? '' : raw.slice(q + 1);
  if (raw.includes('#')) return fail('invalid_request', 'request.path must not contain a fragment');
  if (rawPath.charCodeAt(0) !== 0x2f) return fail('invalid_request', "request.path must start with '/'");

  // Character screen on the raw path before any decoding.
  for (let i = 0; i < rawPath.length; i++) {
    const code = rawPath.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) {
      return fail('policy_violation', 'request.path contains a control character');
    }
    if (code === 0x5c) return fail('policy_violation', 'request.path contains a backslash');
    if (code > 0x7e || code === 0x20) {
      return fail('invalid_request', 'request.path must be percent-encoded ASCII');
    }
  }

  const query = validateQuery(rawQuery);
  if (!query.ok) return query;
  if (rawPath === '/') return ok({ path: '/', query: rawQuery });

  const parts = rawPath.slice(1).split('/');
  let out = '';
  for (let s = 0; s < parts.length; s++) {
    const segment = parts[s] as string;
    if (segment.length === 0) {
      if (s === parts.length - 1) {
        out += '/'; // a single trailing slash is meaningful to some APIs
        break;
      }
      return fail('policy_violation', 'request.path contains an empty segment (//)');
    }
    const decoded = decodeSegment(segment);
    if (!decoded.ok) return decoded;
    const text = decoded.value;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) {
        return fail('policy_violation', 'request.path contains an encoded control character');
      }
      if (code === 0x2f || code === 0x5c) {
        return fail('policy_violation', 'request.path contains an encoded path separator');
      }
    }
    if (isDotSegment(text)) return fail('policy_violation', 'request.path contains a dot segment');
    if (text.includes('%') && DOUBLE_ENCODED.test(text))
      return fail('policy_violation', 'request.path is double-encoded');
    out += `/${encodeSegment(text)}`;
  }
  return ok({ path: out, query: rawQuery });
}

/**
 * Segment-boundary prefix match on canonical paths: `/v1/chat` allows `/v1/chat` and `/v1/chat/…`
 * but not `/v1/chatx`; `/` allows everything; a prefix ending in '/' matches as a plain prefix.
 */
export function isUnderPrefix(path: string, prefix: string): boolean {
  if (prefix === '/') return path.charCodeAt(0) === 0x2f;
  if (!path.startsWith(prefix)) return false;
  if (path.length === prefix.length) return true;
  if (prefix.charCodeAt(prefix.length - 1) === 0x2f) return true;
  return path.charCodeAt(prefix.length) === 0x2f;
}

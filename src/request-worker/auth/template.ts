/**
 * `{{name}}` templates: compiled once when a strategy is created, rendered per request.
 * Rendering fails closed (auth_failed) on an unknown placeholder or a value unsafe for its destination;
 * error messages name the placeholder or field, never a value.
 *
 * Placeholders come from SecretValues (see secrets.ts for the secret shape convention):
 * `{{secret}}` is the raw single secret, and a JSON-object secret exposes its top-level string fields.
 */
import { fail, ok, type Result } from '../../core/errors.js';

export type TemplatePart = string | { readonly placeholder: string };

export interface CompiledTemplate {
  readonly source: string;
  readonly parts: readonly TemplatePart[];
  /** Distinct placeholder names, in order of first use. */
  readonly placeholders: readonly string[];
}

/** Looks a placeholder up; `undefined` means unknown (render fails closed). */
export type PlaceholderLookup = (name: string) => string | undefined;

const PLACEHOLDER_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** Parse a template. `what` names the spec field in errors (e.g. `header.value_template`). */
export function compileTemplate(source: unknown, what: string): Result<CompiledTemplate> {
  if (typeof source !== 'string') return fail('auth_failed', `${what} must be a string`);
  const parts: TemplatePart[] = [];
  const placeholders: string[] = [];
  let i = 0;
  let literal = '';
  while (i < source.length) {
    const open = source.indexOf('{{', i);
    if (open < 0) {
      literal += source.slice(i);
      break;
    }
    literal += source.slice(i, open);
    const close = source.indexOf('}}', open + 2);
    if (close < 0) return fail('auth_failed', `${what} has an unterminated {{ placeholder`);
    const name = source.slice(open + 2, close).trim();
    if (!PLACEHOLDER_NAME.test(name)) return fail('auth_failed', `${what} has an invalid placeholder name`);
    if (literal.length > 0) parts.push(literal);
    literal = '';
    parts.push({ placeholder: name });
    if (!placeholders.includes(name)) placeholders.push(name);
    i = close + 2;
  }
  if (literal.length > 0) parts.push(literal);
  return ok(
    Object.freeze({ source, parts: Object.freeze(parts), placeholders: Object.freeze(placeholders) }),
  );
}

/** Fail at factory time when a template uses a placeholder outside `allowed`. */
export function restrictPlaceholders(
  template: CompiledTemplate,
  allowed: readonly string[],
  what: string,
): Result<CompiledTemplate> {
  for (const name of template.placeholders) {
    if (!allowed.includes(name)) {
      return fail('auth_failed', `${what} may only use ${allowed.map((a) => `{{${a}}}`).join(', ')}`, {
        placeholder: name,
      });
    }
  }
  return ok(template);
}

/**
 * Render with `encode` applied to each substituted value only (literal parts are kept verbatim).
 * `collect`, when given, receives each encoded substituted value (for URL redaction).
 */
export function renderTemplate(
  template: CompiledTemplate,
  lookup: PlaceholderLookup,
  what: string,
  encode?: (value: string) => string,
  collect?: string[],
): Result<string> {
  let out = '';
  for (const part of template.parts) {
    if (typeof part === 'string') {
      out += part;
      continue;
    }
    const value = lookup(part.placeholder);
    if (value === undefined) {
      return fail('auth_failed', `${what}: no secret value for placeholder {{${part.placeholder}}}`, {
        placeholder: part.placeholder,
      });
    }
    const encoded = encode === undefined ? value : encode(value);
    if (collect !== undefined && encoded.length > 0) collect.push(encoded);
    out += encoded;
  }
  return ok(out);
}

// ---------------------------------------------------------------------------------------------------------
// Destination checks and encodings

/** Any control character except HTAB (covers CR, LF, NUL and DEL). */
const HEADER_VALUE_UNSAFE = /[\u0000-\u0008\u000a-\u001f\u007f]/;
/** RFC 9110 token. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export function isSafeHeaderValue(value: string): boolean {
  return !HEADER_VALUE_UNSAFE.test(value);
}

/** Render a header value; CR/LF/NUL (any CTL but HTAB) anywhere in the result fails closed. */
export function renderHeaderValue(
  template: CompiledTemplate,
  lookup: PlaceholderLookup,
  what: string,
): Result<string> {
  const rendered = renderTemplate(template, lookup, what);
  if (!rendered.ok) return rendered;
  if (!isSafeHeaderValue(rendered.value)) {
    return fail('auth_failed', `${what}: rendered header value contains a control character`);
  }
  return rendered;
}

/**
 * Header names an auth spec may never set: framing, routing and hop-by-hop headers the transport owns.
 * (Setting them from a template would let a spec smuggle requests or redirect them.)
 */
const FORBIDDEN_AUTH_HEADERS: ReadonlySet<string> = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'proxy-connection',
]);

/** Validate and lower-case an auth header name (fails closed on a non-token or transport-owned name). */
export function checkHeaderName(name: unknown, what: string): Result<string> {
  if (typeof name !== 'string' || !HEADER_NAME.test(name)) {
    return fail('auth_failed', `${what} must be a valid HTTP header name`);
  }
  const lower = name.toLowerCase();
  if (FORBIDDEN_AUTH_HEADERS.has(lower) || lower.startsWith(':')) {
    return fail('auth_failed', `${what} names a transport-owned header`, { header: lower });
  }
  return ok(lower);
}

/** RFC 3986 percent-encoding: everything but unreserved `A-Z a-z 0-9 - . _ ~` (UTF-8 first). */
export function encodeRfc3986(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * Encode a value that must stay inside ONE path segment: unreserved and the sub-delims/`:`/`@` allowed in a
 * segment are kept (so a Telegram token `123:abc` stays readable), `/ ? # % [ ] ` space and non-ASCII are
 * encoded. A value of `.` or `..` is encoded fully so it can never act as a dot-segment.
 */
export function encodePathSegment(value: string): string {
  if (value === '.' || value === '..') return value.replace(/\./g, '%2E');
  return encodeRfc3986(value).replace(/%(21|24|26|27|28|29|2A|2B|2C|3B|3D|3A|40)/g, (_m, hex: string) =>
    String.fromCharCode(parseInt(hex, 16)),
  );
}

/** Decode one raw query component: `%XX` only (`+` stays a literal plus). `undefined` on bad escapes. */
export function decodeQueryComponent(value: string): string | undefined {
  if (!value.includes('%')) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return undefined;
  }
}

/** Split a raw query (no `?`) into decoded [name, value] pairs; `undefined` on a malformed escape. */
export function parseRawQuery(query: string): [string, string][] | undefined {
  const out: [string, string][] = [];
  if (query.length === 0) return out;
  for (const piece of query.split('&')) {
    if (piece.length === 0) continue;
    const eq = piece.indexOf('=');
    const rawName = eq < 0 ? piece : piece.slice(0, eq);
    const rawValue = eq < 0 ? '' : piece.slice(eq + 1);
    const name = decodeQueryComponent(rawName);
    const value = decodeQueryComponent(rawValue);
    if (name === undefined || value === undefined) return undefined;
    out.push([name, value]);
  }
  return out;
}

/**
 * hmac: signs a canonical description of the request with the credential's `{{secret}}` (UTF-8 key) and
 * sends it in `header_name`, rendered from `value_template` (only `{{timestamp}}` and `{{signature}}` are
 * allowed there, so the key itself can never be templated into a header).
 *
 * Canonical input (deterministic; lines joined with "\n", no trailing newline):
 *   1. METHOD            upper-case
 *   2. path              the request path exactly as sent (no query)
 *   3. canonical query   the raw query decoded (`%XX` only; `+` stays literal), each name and value
 *                        re-encoded with RFC 3986, sorted by encoded name then encoded value (code-unit order),
 *                        joined as `name=value` with `&` ('' when there is no query)
 *   4. timestamp         Unix seconds, decimal (the same value `{{timestamp}}` renders)
 *   5. body hash         lower-case hex SHA-256 of the exact body bytes (of '' for an empty body)
 * The signature is HMAC-<algorithm>(key, input), encoded `hex` (lower-case, default) or `base64`.
 * The key is the secret's UTF-8 text, or with `key_encoding: base64` the bytes it encodes (Svix-style
 * `whsec_<base64>` signing secrets included). A streamed/file body (not available to hash) fails closed.
 */
import { createHash, createHmac } from 'node:crypto';
import { fail, ok, type Result } from '../../core/errors.js';
import type { AuthInput, AuthStrategy } from './strategy.js';
import {
  checkHeaderName,
  compileTemplate,
  encodeRfc3986,
  parseRawQuery,
  renderHeaderValue,
  restrictPlaceholders,
} from './template.js';

const ALGORITHMS = ['sha256', 'sha512', 'sha1'] as const;
const ENCODINGS = ['hex', 'base64'] as const;
const KEY_ENCODINGS = ['utf8', 'base64'] as const;
const BASE64_KEY = /^[A-Za-z0-9+/_-]+={0,2}$/;

/**
 * A base64 key → its bytes. Buffer.from(…, 'base64') silently skips characters outside the alphabet, so
 * the text is checked first: a typo must fail, not sign with a different key. Messages never echo the key.
 */
export function decodeBase64Key(text: string): Result<Buffer> {
  const body = text.trim().replace(/^whsec_/, '');
  if (body.length === 0 || !BASE64_KEY.test(body) || body.length % 4 === 1) {
    return fail('auth_failed', 'hmac key_encoding base64: the secret is not valid base64');
  }
  return ok(Buffer.from(body, body.includes('-') || body.includes('_') ? 'base64url' : 'base64'));
}

/** Build the canonical signing input (exported for tests and for documenting provider-side verification). */
export function hmacCanonicalInput(input: AuthInput, timestamp: string): Result<string> {
  if (input.body === undefined) {
    return fail('auth_failed', 'hmac auth needs the request body; streamed or file bodies cannot be signed');
  }
  const pairs = parseRawQuery(input.query);
  if (pairs === undefined) return fail('auth_failed', 'hmac auth: request query has a malformed escape');
  const encoded = pairs.map(([n, v]) => [encodeRfc3986(n), encodeRfc3986(v)] as const);
  encoded.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  const query = encoded.map(([n, v]) => `${n}=${v}`).join('&');
  const bodyHash = createHash('sha256').update(input.body).digest('hex');
  return ok(`${input.method.toUpperCase()}\n${input.path}\n${query}\n${timestamp}\n${bodyHash}`);
}

export const hmacStrategy = {
  type: 'hmac',
  create(spec, _params, env) {
    const algorithm = spec?.algorithm;
    if (!ALGORITHMS.includes(algorithm))
      return fail('auth_failed', 'hmac.algorithm must be sha256, sha512 or sha1');
    const encoding = spec.encoding ?? 'hex';
    if (!ENCODINGS.includes(encoding)) return fail('auth_failed', 'hmac.encoding must be hex or base64');
    const keyEncoding = spec.key_encoding ?? 'utf8';
    if (!KEY_ENCODINGS.includes(keyEncoding))
      return fail('auth_failed', 'hmac.key_encoding must be utf8 or base64');
    const name = checkHeaderName(spec.header_name, 'hmac.header_name');
    if (!name.ok) return name;
    const compiled = compileTemplate(spec.value_template, 'hmac.value_template');
    if (!compiled.ok) return compiled;
    const template = restrictPlaceholders(compiled.value, ['timestamp', 'signature'], 'hmac.value_template');
    if (!template.ok) return template;
    const headerName = name.value;
    const now = env?.now ?? Date.now;
    return ok(async (input, secrets) => {
      const key = secrets.get('secret');
      if (key === undefined || key.length === 0)
        return fail('auth_failed', 'hmac auth needs a {{secret}} key');
      const timestamp = String(Math.floor(now() / 1000));
      const canonical = hmacCanonicalInput(input, timestamp);
      if (!canonical.ok) return canonical;
      let keyBytes: string | Buffer = key;
      if (keyEncoding === 'base64') {
        const decoded = decodeBase64Key(key);
        if (!decoded.ok) return decoded;
        keyBytes = decoded.value;
      }
      const signature = createHmac(algorithm, keyBytes).update(canonical.value, 'utf8').digest(encoding);
      if (typeof keyBytes !== 'string') keyBytes.fill(0);
      const value = renderHeaderValue(
        template.value,
        (n) => (n === 'signature' ? signature : n === 'timestamp' ? timestamp : undefined),
        'hmac.value_template',
      );
      if (!value.ok) return value;
      return ok({ setHeaders: [[headerName, value.value]], appendQuery: [], urlSecrets: [] });
    });
  },
  headerNames: (spec) => (typeof spec?.header_name === 'string' ? [spec.header_name.toLowerCase()] : []),
  queryNames: () => [],
} satisfies AuthStrategy<'hmac'>;

/**
 * Strict parser for the caller's envelope `{capability, credential?, request}`. Untrusted input: no
 * field is trusted, unknown fields are errors, and nothing a caller sends can name a host or scheme.
 *
 * Hand-written rather than a zod schema because this runs on every request and needs a different
 * error code per rule (`url` → policy_violation, unknown field → invalid_request, two body modes →
 * invalid_request): one pass over own keys with Set lookups, no issue objects, no intermediate clones.
 */
import { fail, ok, type Result } from '../errors.js';
import { HTTP_METHODS, type HttpMethod } from '../registry/types.js';
import { MAX_HEADERS } from './headers.js';
import { isId } from './ids.js';
import { MAX_PATH_LENGTH } from './path.js';
import type { Envelope, EnvelopeRequest, MultipartField, MultipartFile } from './types.js';

export const MAX_ID_LENGTH = 256;
export const MAX_MULTIPART_PARTS = 100;

const TOP_LEVEL_FIELDS: ReadonlySet<string> = new Set(['capability', 'credential', 'request']);
const REQUEST_FIELDS: ReadonlySet<string> = new Set([
  'method',
  'path',
  'headers',
  'body',
  'bodyBase64',
  'bodyBytes',
  'multipart',
  'multipartFiles',
  'bodyFilePath',
]);
/**
 * Fields that would let a caller pick the destination. Checked before the unknown-field rule so they
 * are reported as what they are (an attempt to steer the request), not as a typo.
 */
const DESTINATION_FIELDS: ReadonlySet<string> = new Set([
  'url',
  'uri',
  'targetUrl',
  'target_url',
  'baseUrl',
  'base_url',
  'host',
  'hostname',
  'origin',
  'scheme',
  'protocol',
  'port',
  'authority',
]);
const MULTIPART_FILE_FIELDS: ReadonlySet<string> = new Set([
  'name',
  'path',
  'contentBase64',
  'filename',
  'contentType',
]);
const METHODS: ReadonlySet<string> = new Set(HTTP_METHODS);
/** `scheme:` at the start of a path, e.g. `https://`, `file:`, `javascript:`. */
const SCHEME_PREFIX = /^[a-z][a-z0-9+.-]*:/i;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

type Obj = Record<string, unknown>;

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** null and undefined both mean "absent" (JSON encoders differ on which they emit). */
function present(value: unknown): boolean {
  return value !== undefined && value !== null;
}

function checkKeys(obj: Obj, allowed: ReadonlySet<string>, where: string): Result<true> {
  for (const key of Object.keys(obj)) {
    if (DESTINATION_FIELDS.has(key)) {
      return fail('policy_violation', `${where}${key} is not allowed: the destination comes from policy`, {
        field: `${where}${key}`,
      });
    }
    if (!allowed.has(key)) {
      return fail('invalid_request', `unknown field ${where}${key}`, { field: `${where}${key}` });
    }
  }
  return ok(true);
}

/** The value is not echoed: it is caller input that may hold control characters. */
function parseId(value: unknown, field: string): Result<string> {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_ID_LENGTH) {
    return fail('invalid_request', `${field} must be a non-empty string`, { field });
  }
  if (!isId(value)) {
    return fail('invalid_request', `${field} must be an id (letters, digits, . _ - /)`, { field });
  }
  return ok(value);
}

function parsePath(value: unknown): Result<string> {
  if (typeof value !== 'string' || value.length === 0) {
    return fail('invalid_request', 'request.path must be a non-empty string', { field: 'request.path' });
  }
  if (value.length > MAX_PATH_LENGTH) {
    return fail('invalid_request', 'request.path is too long', { field: 'request.path' });
  }
  const q = value.indexOf('?');
  const pathPart = q === -1 ? value : value.slice(0, q);
  // Absolute URLs, protocol-relative `//host` and `host/…` all try to choose the destination.
  if (SCHEME_PREFIX.test(pathPart) || pathPart.startsWith('//') || pathPart.startsWith('/\\')) {
    return fail('policy_violation', 'request.path must be a path, not a URL', { field: 'request.path' });
  }
  if (pathPart.charCodeAt(0) !== 0x2f) {
    const firstSegment = pathPart.split('/')[0] ?? '';
    if (firstSegment.includes('.') || firstSegment.includes(':') || firstSegment.includes('@')) {
      return fail('policy_violation', 'request.path must not name a host', { field: 'request.path' });
    }
    return fail('invalid_request', "request.path must start with '/'", { field: 'request.path' });
  }
  return ok(value);
}

function parseHeaders(value: unknown): Result<readonly (readonly [string, string])[]> {
  const field = 'request.headers';
  const out: (readonly [string, string])[] = [];
  if (Array.isArray(value)) {
    if (value.length > MAX_HEADERS)
      return fail('invalid_request', `${field} has too many entries`, { field });
    for (let i = 0; i < value.length; i++) {
      const pair: unknown = value[i];
      if (
        !Array.isArray(pair) ||
        pair.length !== 2 ||
        typeof pair[0] !== 'string' ||
        typeof pair[1] !== 'string'
      ) {
        return fail('invalid_request', `${field}.${i} must be a [name, value] pair of strings`, {
          field: `${field}.${i}`,
        });
      }
      out.push([pair[0], pair[1]]);
    }
    return ok(out);
  }
  if (isObject(value)) {
    const keys = Object.keys(value);
    if (keys.length > MAX_HEADERS) return fail('invalid_request', `${field} has too many entries`, { field });
    for (const key of keys) {
      const v = value[key];
      if (typeof v !== 'string') {
        return fail('invalid_request', `${field}.${key} must be a string`, { field: `${field}.${key}` });
      }
      out.push([key, v]);
    }
    return ok(out);
  }
  return fail('invalid_request', `${field} must be [[name, value], …] or {name: value}`, { field });
}

function parseMultipart(value: unknown): Result<readonly MultipartField[]> {
  const field = 'request.multipart';
  const out: MultipartField[] = [];
  if (Array.isArray(value)) {
    if (value.length > MAX_MULTIPART_PARTS)
      return fail('invalid_request', `${field} has too many parts`, { field });
    for (let i = 0; i < value.length; i++) {
      const part: unknown = value[i];
      const f = `${field}.${i}`;
      if (!isObject(part)) return fail('invalid_request', `${f} must be {name, value}`, { field: f });
      for (const key of Object.keys(part)) {
        if (key !== 'name' && key !== 'value') {
          return fail('invalid_request', `unknown field ${f}.${key}`, { field: `${f}.${key}` });
        }
      }
      if (typeof part.name !== 'string' || part.name.length === 0 || typeof part.value !== 'string') {
        return fail('invalid_request', `${f} must be {name, value} strings`, { field: f });
      }
      out.push({ name: part.name, value: part.value });
    }
    return ok(out);
  }
  if (isObject(value)) {
    const keys = Object.keys(value);
    if (keys.length > MAX_MULTIPART_PARTS)
      return fail('invalid_request', `${field} has too many parts`, { field });
    for (const key of keys) {
      const v = value[key];
      if (typeof v !== 'string') {
        return fail('invalid_request', `${field}.${key} must be a string`, { field: `${field}.${key}` });
      }
      out.push({ name: key, value: v });
    }
    return ok(out);
  }
  return fail('invalid_request', `${field} must be a list of {name, value} or a record`, { field });
}

function parseMultipartFiles(value: unknown): Result<readonly MultipartFile[]> {
  const field = 'request.multipartFiles';
  if (!Array.isArray(value)) return fail('invalid_request', `${field} must be a list`, { field });
  if (value.length > MAX_MULTIPART_PARTS)
    return fail('invalid_request', `${field} has too many parts`, { field });
  const out: MultipartFile[] = [];
  for (let i = 0; i < value.length; i++) {
    const part: unknown = value[i];
    const f = `${field}.${i}`;
    if (!isObject(part)) return fail('invalid_request', `${f} must be an object`, { field: f });
    const keys = checkKeys(part, MULTIPART_FILE_FIELDS, `${f}.`);
    if (!keys.ok) return keys;
    if (typeof part.name !== 'string' || part.name.length === 0) {
      return fail('invalid_request', `${f}.name must be a non-empty string`, { field: `${f}.name` });
    }
    const hasPath = present(part.path);
    const hasContent = present(part.contentBase64);
    if (hasPath === hasContent) {
      return fail('invalid_request', `${f} needs exactly one of path or contentBase64`, { field: f });
    }
    const file: { -readonly [K in keyof MultipartFile]: MultipartFile[K] } = { name: part.name };
    if (hasPath) {
      if (typeof part.path !== 'string' || part.path.length === 0 || part.path.includes('\0')) {
        return fail('invalid_request', `${f}.path must be a non-empty string`, { field: `${f}.path` });
      }
      file.path = part.path;
    } else {
      if (typeof part.contentBase64 !== 'string' || !BASE64.test(part.contentBase64)) {
        return fail('invalid_request', `${f}.contentBase64 must be base64`, { field: `${f}.contentBase64` });
      }
      file.contentBase64 = part.contentBase64;
    }
    for (const key of ['filename', 'contentType'] as const) {
      const v = part[key];
      if (!present(v)) continue;
      // CR/LF/quote in these would let a caller forge part headers in the multipart body.
      if (typeof v !== 'string' || /[\r\n\0"]/.test(v)) {
        return fail('invalid_request', `${f}.${key} must be a plain string`, { field: `${f}.${key}` });
      }
      file[key] = v;
    }
    out.push(file);
  }
  return ok(out);
}

function parseRequest(value: unknown): Result<EnvelopeRequest> {
  if (!isObject(value)) return fail('invalid_request', 'request must be an object', { field: 'request' });
  const keys = checkKeys(value, REQUEST_FIELDS, 'request.');
  if (!keys.ok) return keys;

  // Exactly zero or one body mode (multipart + multipartFiles together are one mode).
  let modes = 0;
  if (present(value.body)) modes++;
  if (present(value.bodyBase64)) modes++;
  if (present(value.bodyBytes)) modes++;
  if (present(value.multipart) || present(value.multipartFiles)) modes++;
  if (present(value.bodyFilePath)) modes++;
  if (modes > 1) {
    return fail(
      'invalid_request',
      'request has more than one body mode (body, bodyBase64, bodyBytes, multipart, bodyFilePath)',
      {
        field: 'request',
      },
    );
  }

  if (typeof value.method !== 'string') {
    return fail('invalid_request', 'request.method must be a string', { field: 'request.method' });
  }
  const method = value.method.toUpperCase();
  if (!METHODS.has(method)) {
    return fail('invalid_request', 'request.method is not a supported HTTP method', {
      field: 'request.method',
    });
  }
  const path = parsePath(value.path);
  if (!path.ok) return path;

  const request: { -readonly [K in keyof EnvelopeRequest]: EnvelopeRequest[K] } = {
    method: method as HttpMethod,
    path: path.value,
  };
  if (present(value.headers)) {
    const headers = parseHeaders(value.headers);
    if (!headers.ok) return headers;
    request.headers = headers.value;
  }
  if (present(value.body)) {
    if (typeof value.body !== 'string') {
      return fail('invalid_request', 'request.body must be a string (use bodyBase64 for bytes)', {
        field: 'request.body',
      });
    }
    request.body = value.body;
  } else if (present(value.bodyBase64)) {
    if (typeof value.bodyBase64 !== 'string' || !BASE64.test(value.bodyBase64)) {
      return fail('invalid_request', 'request.bodyBase64 must be base64', { field: 'request.bodyBase64' });
    }
    request.bodyBase64 = value.bodyBase64;
  } else if (present(value.bodyBytes)) {
    if (!(value.bodyBytes instanceof Uint8Array)) {
      return fail('invalid_request', 'request.bodyBytes must be bytes (msgpack bin)', {
        field: 'request.bodyBytes',
      });
    }
    request.bodyBytes = value.bodyBytes;
  } else if (present(value.bodyFilePath)) {
    if (
      typeof value.bodyFilePath !== 'string' ||
      value.bodyFilePath.length === 0 ||
      value.bodyFilePath.includes('\0')
    ) {
      return fail('invalid_request', 'request.bodyFilePath must be a non-empty string', {
        field: 'request.bodyFilePath',
      });
    }
    request.bodyFilePath = value.bodyFilePath;
  } else {
    if (present(value.multipart)) {
      const fields = parseMultipart(value.multipart);
      if (!fields.ok) return fields;
      request.multipart = fields.value;
    }
    if (present(value.multipartFiles)) {
      const files = parseMultipartFiles(value.multipartFiles);
      if (!files.ok) return files;
      request.multipartFiles = files.value;
    }
  }
  return ok(request);
}

/**
 * Parse an untrusted envelope. Never throws.
 *
 * @example
 * parseEnvelope({ capability: 'openai/chat-completions', request: { method: 'POST', path: '/v1/chat/completions' } });
 */
export function parseEnvelope(input: unknown): Result<Envelope> {
  if (!isObject(input)) return fail('invalid_request', 'envelope must be a JSON object');
  const keys = checkKeys(input, TOP_LEVEL_FIELDS, '');
  if (!keys.ok) return keys;
  const capability = parseId(input.capability, 'capability');
  if (!capability.ok) return capability;
  const request = parseRequest(input.request);
  if (!request.ok) return request;
  if (present(input.credential)) {
    const credential = parseId(input.credential, 'credential');
    if (!credential.ok) return credential;
    return ok({ capability: capability.value, credential: credential.value, request: request.value });
  }
  return ok({ capability: capability.value, request: request.value });
}

/**
 * Fuzz property oracles: each takes an input, calls one parser of the untrusted boundary, and throws only
 * when a PROPERTY is broken (an exception escaping the parser is itself a finding). Shared by both fuzzers:
 * fuzz.test.ts (fast-check, grammar-biased random inputs) and jazzer/targets.ts (Jazzer.js on libFuzzer,
 * coverage-guided), so every property is written once.
 */
import { encode as msgpackEncode } from 'msgpackr';
import {
  decodeClientFrame,
  decodeDaemonFrame,
  encodeFrame,
  peekFrameId,
} from '../../src/core/protocol/frames.js';
import { parseEnvelope } from '../../src/core/broker/envelope.js';
import { isUnderPrefix, normalizePath } from '../../src/core/broker/path.js';
import {
  formatAuthority,
  isValidHostPattern,
  isWildcardPattern,
  matchHost,
  normalizeHost,
  parseAuthority,
} from '../../src/core/broker/hosts.js';
import { isAivaultError } from '../../src/core/errors.js';
import { extractToken, splitPassthroughPath } from '../../src/front/http-passthrough.js';
import { brokerFileSchema, emptyCapabilitiesFile, parseStoreFile } from '../../src/stores/catalog/schema.js';
import { buildSnapshot } from '../../src/stores/catalog/snapshot.js';
import { capabilityFromRegistry } from '../../src/core/broker/resolve-capability.js';
import { registry } from '../../src/core/registry/index.js';

function check(cond: boolean, what: string, input: unknown): void {
  if (!cond) throw new Error(`property broken: ${what} for ${JSON.stringify(input)?.slice(0, 300)}`);
}

/** Frame decoder: never throws; ok results re-encode and decode to the same frame; errors are invalid_request. */
export function fuzzFrame(bytes: Uint8Array): void {
  for (const decode of [decodeClientFrame, decodeDaemonFrame]) {
    const r = decode(bytes);
    if (r.ok) {
      const { v: _v, ...rest } = r.value as unknown as Record<string, unknown>;
      const again = decode(encodeFrame(rest as Parameters<typeof encodeFrame>[0]));
      check(again.ok, 'decoded frame re-encodes', rest);
    } else {
      check(
        isAivaultError(r.error) && r.error.code === 'invalid_request',
        'error is invalid_request',
        r.error,
      );
    }
  }
  const id = peekFrameId(bytes);
  check(id === undefined || (Number.isSafeInteger(id) && id > 0), 'peeked id is a positive safe int', id);
}

/** Same, for structured values packed as msgpack (reaches deeper than raw bytes). */
export function fuzzFrameValue(value: unknown): void {
  let bytes: Uint8Array;
  try {
    bytes = msgpackEncode(value);
  } catch {
    return; // not encodable: not a frame an attacker can send
  }
  fuzzFrame(bytes);
}

const DOT = /(^|\/)\.{1,2}(\/|$)/;

/** Envelope parser: never throws; accepted envelopes have exactly the allowed shape and one body mode. */
export function fuzzEnvelope(input: unknown): void {
  const r = parseEnvelope(input);
  if (!r.ok) {
    check(isAivaultError(r.error), 'error is an AivaultError', r.error);
    check(['invalid_request', 'policy_violation'].includes(r.error.code), 'error code', r.error.code);
    return;
  }
  const e = r.value;
  check(typeof e.capability === 'string' && e.capability.length > 0, 'capability present', e);
  check(!('url' in (e.request as object)), 'request.url never accepted', e);
  const modes = [
    e.request.body,
    e.request.bodyBase64,
    e.request.bodyBytes,
    e.request.multipart ?? e.request.multipartFiles,
    e.request.bodyFilePath,
  ].filter((x) => x !== undefined).length;
  check(modes <= 1, 'at most one body mode', e);
  for (const k of Object.keys(e))
    check(['capability', 'credential', 'request'].includes(k), 'known top-level key', k);
}

/** Path normalizer: never throws; accepted output is canonical, idempotent, ASCII, with no traversal. */
export function fuzzPath(raw: string, prefix = '/v1'): void {
  const r = normalizePath(raw);
  if (!r.ok) {
    check(['invalid_request', 'policy_violation'].includes(r.error.code), 'error code', r.error.code);
    return;
  }
  const { path, query } = r.value;
  check(path.startsWith('/'), 'starts with /', raw);
  check(!path.includes('//'), 'no empty segment', raw);
  check(!path.includes('\\'), 'no backslash', raw);
  check(!DOT.test(path), 'no dot segment', raw);
  check(/^[\x21-\x7e]*$/.test(path), 'printable ASCII', raw);
  for (const seg of path.split('/')) {
    let d: string;
    try {
      d = decodeURIComponent(seg);
    } catch {
      throw new Error(`property broken: output segment is not decodable for ${JSON.stringify(raw)}`);
    }
    check(d !== '.' && d !== '..' && !d.includes('/') && !d.includes('\\'), 'decoded segment is safe', raw);
  }
  const again = normalizePath(query ? `${path}?${query}` : path);
  check(again.ok && again.value.path === path, 'idempotent', raw);
  if (isUnderPrefix(path, prefix))
    check(path === prefix || path.startsWith(`${prefix}/`), 'segment-boundary prefix', raw);
}

/**
 * Host matcher: never throws on anything; on canonical inputs (its contract: policy data is normalized when
 * stored) a wildcard matches exactly one leading label on a dot boundary, never the apex, same port; an
 * exact pattern matches only itself.
 */
export function fuzzHost(pattern: string, rawHost: string): void {
  matchHost(pattern, rawHost);
  normalizeHost(rawHost);
  const auth = parseAuthority(rawHost, { allowPort: true });
  if (!auth.ok || !isValidHostPattern(pattern, { allowPort: true })) return;
  const host = formatAuthority(auth.value);
  const m = matchHost(pattern, host);
  const [pName, pPort = '443'] = pattern.split(':') as [string, string?];
  if (!m) {
    if (pattern.startsWith('*.')) {
      const suffix = pName.slice(2);
      const label = auth.value.host.slice(0, -suffix.length - 1);
      const should =
        auth.value.host.endsWith(`.${suffix}`) &&
        label.length > 0 &&
        !label.includes('.') &&
        String(auth.value.port) === pPort;
      check(!should, 'wildcard matches a one-label subdomain on the same port', [pattern, host]);
    } else check(pattern !== host, 'exact pattern matches itself', [pattern, host]);
    return;
  }
  check(String(auth.value.port) === pPort, 'same port', [pattern, host]);
  if (pattern.startsWith('*.')) {
    const suffix = pName.slice(2);
    check(auth.value.host !== suffix, 'wildcard never matches the apex', [pattern, host]);
    check(auth.value.host.endsWith(`.${suffix}`), 'dot-boundary suffix', [pattern, host]);
    check(!auth.value.host.slice(0, -suffix.length - 1).includes('.'), 'exactly one leading label', [
      pattern,
      host,
    ]);
  } else {
    check(pattern === host, 'exact match', [pattern, host]);
  }
}

/**
 * HTTP routes: the `/v/{credential}/…` passthrough split and proxy-token extraction, on a raw request
 * target and raw header values. Never throws; the split round-trips and its rest path goes through the
 * path properties above; a token comes only from the header that may carry it on that route.
 */
export function fuzzRoute(url: string, authorization: string, apiKey: string): void {
  const split = splitPassthroughPath(url);
  if (split) {
    check(split.credential.length > 0, 'credential id non-empty', url);
    const hasRest = url.indexOf('/', 3) !== -1;
    check(
      hasRest ? url.endsWith(split.rest) && split.rest.startsWith('/') : split.rest === '/',
      'rest is the tail of the target (or / for none)',
      url,
    );
    const again = splitPassthroughPath(`/v/${encodeURIComponent(split.credential)}${split.rest}`);
    check(
      again?.credential === split.credential && again.rest === split.rest,
      'split round-trips through encodeURIComponent',
      url,
    );
    fuzzPath(split.rest);
  } else {
    check(
      !url.startsWith('/v/') || url.length === 3 || url[3] === '/' || url.includes('%'),
      'refusal reason',
      url,
    );
  }
  for (const passthrough of [false, true]) {
    const token = extractToken({ authorization, 'x-api-key': apiKey }, passthrough);
    if (token === undefined) continue;
    check(token.length > 0, 'token non-empty', [authorization, apiKey]);
    if (authorization.trim() !== '') {
      check(
        !/\s/.test(token) && authorization.includes(token),
        'an Authorization header is the only source when present, and a Bearer token is one word',
        [authorization, apiKey],
      );
    } else {
      check(passthrough && token === apiKey.trim(), 'x-api-key only on passthrough routes', [
        authorization,
        apiKey,
      ]);
    }
  }
}

/**
 * broker.json as read from disk (hand-edited or tampered). Only `storage_corrupt` may escape the loader,
 * and an accepted file never widens policy: every registry capability in the snapshot is exactly the
 * compiled registry's (a stored capability cannot shadow one), and any credential naming a registry
 * provider (registry or "custom" source) keeps to that provider's hosts or concrete tenant hosts under its
 * wildcards, with the registry's auth (a disk edit cannot redirect a pinned key). Returns whether the file
 * was accepted, so a run can show it explored past the schema.
 */
export function fuzzBrokerFile(raw: unknown): boolean {
  let file;
  try {
    file = parseStoreFile(brokerFileSchema, raw, 'broker.json');
  } catch (err) {
    check(isAivaultError(err) && err.code === 'storage_corrupt', 'only storage_corrupt escapes', String(err));
    return false;
  }
  const snapshot = buildSnapshot(file, emptyCapabilitiesFile(), registry, []);
  for (const provider of registry.providers) {
    for (const entry of provider.capabilities) {
      const got = snapshot.capabilities.get(entry.id);
      check(
        JSON.stringify(got) === JSON.stringify(capabilityFromRegistry(entry)),
        'registry capability unchanged',
        entry.id,
      );
    }
  }
  for (const credential of snapshot.credentials.values()) {
    const provider = registry.getProvider(credential.provider);
    if (!provider) continue; // a custom provider name: its hosts are the operator's to choose
    for (const h of credential.hosts) {
      const allowed =
        provider.hosts.includes(h) ||
        (!isWildcardPattern(h) && provider.hosts.some((p) => isWildcardPattern(p) && matchHost(p, h)));
      check(allowed, 'a credential for a registry provider stays within its hosts', [credential.id, h]);
    }
    if (credential.source === 'registry')
      check(credential.auth === provider.auth, 'registry auth comes from the registry', credential.id);
  }
  return true;
}

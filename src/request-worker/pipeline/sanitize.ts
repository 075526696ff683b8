/**
 * Response sanitizing: drop hop-by-hop, framing and auth-class headers; redact blocklisted JSON fields;
 * enforce the max response size. Pure functions over bytes and header lists; never sees a secret value.
 */
import { AivaultError } from '../../core/errors.js';
import type { HeaderList } from '../../core/broker/types.js';
import { filterResponseHeaders } from '../../core/broker/headers.js';

/**
 * undici's header record → a filtered [name, value] list (multi-valued headers become repeated pairs).
 * The rules (hop-by-hop, framing, set-cookie, authorization, www-authenticate, proxy-*, x-api-key …) live
 * in core/broker/headers.ts so every transport filters the same way; `extraBlocked` adds the credential's own
 * injected header names.
 */
export function filterUpstreamHeaders(
  headers: Readonly<Record<string, string | string[] | undefined>>,
  extraBlocked?: ReadonlySet<string>,
): [string, string][] {
  const pairs: [string, string][] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) pairs.push([name, v]);
    else pairs.push([name, value]);
  }
  return filterResponseHeaders(pairs, extraBlocked);
}

export const REDACTED = '[redacted]';

/** Recursively replace the value of every object field whose name is in `blocklist` with "[redacted]". */
export function redactJsonValue(value: unknown, blocklist: ReadonlySet<string>): unknown {
  if (Array.isArray(value)) return value.map((v) => redactJsonValue(v, blocklist));
  if (typeof value === 'object' && value !== null) {
    // No prototype: a member named "__proto__" (JSON.parse makes it an own key) must stay a member, not
    // become this object's prototype and vanish from the output (found by the chunking property test).
    const out = Object.create(null) as Record<string, unknown>;
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      out[k] = blocklist.has(k) ? REDACTED : redactJsonValue(v, blocklist);
    }
    return out;
  }
  return value;
}

/**
 * Apply the response blocklist to a buffered body. JSON bodies are parsed and redacted; a body that is
 * not JSON cannot be inspected, so it is withheld rather than passed through unredacted (fail closed).
 */
export function applyResponseBlocklist(
  body: Uint8Array,
  blocklist: readonly string[],
  headers: HeaderList,
): { body: Uint8Array; headers: HeaderList } {
  if (blocklist.length === 0 || body.byteLength === 0) return { body, headers };
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch {
    throw new AivaultError(
      'policy_violation',
      'response blocklist is set but the upstream response is not JSON; it was withheld',
    );
  }
  const redacted = redactJsonValue(parsed, new Set(blocklist));
  const out = Buffer.from(JSON.stringify(redacted), 'utf8');
  const kept = headers.filter(([n]) => n !== 'content-type');
  return {
    body: new Uint8Array(out.buffer, out.byteOffset, out.byteLength),
    headers: [...kept, ['content-type', 'application/json']],
  };
}

/** Throw body_too_large once `received` exceeds `max`. */
export function checkResponseSize(received: number, max: number | undefined): void {
  if (max !== undefined && received > max) {
    throw new AivaultError('body_too_large', `upstream response exceeds the policy limit of ${max} bytes`, {
      limit: max,
    });
  }
}

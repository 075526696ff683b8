/**
 * Host names and host patterns for policy: normalization (lower-case, no trailing dot, IDN → punycode)
 * and single-label wildcard matching. Pure: `domainToASCII` is a string transform, not a DNS lookup.
 * Hosts here are authorities as stored in policy: `name` or, in dev vaults only, `name:port`.
 */
import { domainToASCII } from 'node:url';
import { fail, ok, type Result } from '../errors.js';

export const DEFAULT_HTTPS_PORT = 443;

export interface HostOptions {
  /** Dev vaults only (AIVAULT_DEV_ALLOW_NON_DEFAULT_PORTS): accept `host:port`. */
  readonly allowPort?: boolean;
}

export interface Authority {
  readonly host: string;
  readonly port: number;
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/** Punycode labels (`xn--`) may contain '--' inside; LABEL already allows it. All-digit TLD = IP-ish. */
const NUMERIC_LABEL = /^(?:0x[0-9a-f]*|[0-9]+)$/;

/**
 * Lower-case, strip one trailing dot, convert IDN to punycode and validate as a DNS name with at least
 * two labels. Returns undefined for anything else: IP literals (v4, v6, numeric/hex forms), ports,
 * userinfo, empty labels, single-label names like `localhost`.
 */
export function normalizeHost(raw: string): string | undefined {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > 254) return undefined;
  let name = raw.trim();
  if (name.endsWith('.')) name = name.slice(0, -1);
  // Fast path: plain ASCII names skip the WHATWG IDNA transform.
  let ascii = name.toLowerCase();
  for (let i = 0; i < ascii.length; i++) {
    if (ascii.charCodeAt(i) > 0x7e) {
      ascii = domainToASCII(name);
      break;
    }
  }
  if (ascii.length === 0 || ascii.length > 253) return undefined;
  const labels = ascii.split('.');
  if (labels.length < 2) return undefined;
  for (const label of labels) if (!LABEL.test(label)) return undefined;
  // A numeric last label means an IPv4 literal in some form (`127.0.0.1`, `0x7f.1`): never a host.
  if (NUMERIC_LABEL.test(labels[labels.length - 1] as string)) return undefined;
  return ascii;
}

/** Parse a stored or caller authority (`host` or `host:port`). `:443` is folded into the default. */
export function parseAuthority(raw: string, options: HostOptions = {}): Result<Authority> {
  if (typeof raw !== 'string' || raw.length === 0) return fail('policy_violation', 'host is empty');
  if (raw.includes('@') || raw.includes('/') || raw.includes('[') || raw.includes('\\')) {
    return fail('policy_violation', 'host must be a bare DNS name');
  }
  let hostPart = raw;
  let port = DEFAULT_HTTPS_PORT;
  const colon = raw.lastIndexOf(':');
  if (colon !== -1) {
    const portText = raw.slice(colon + 1);
    if (!/^[1-9][0-9]{0,4}$/.test(portText)) return fail('policy_violation', 'host has an invalid port');
    port = Number(portText);
    if (port > 65535) return fail('policy_violation', 'host has an invalid port');
    hostPart = raw.slice(0, colon);
    if (port !== DEFAULT_HTTPS_PORT && options.allowPort !== true) {
      return fail('policy_violation', 'only the default https port is allowed');
    }
  }
  const host = normalizeHost(hostPart);
  if (host === undefined) return fail('policy_violation', 'host is not a valid DNS name');
  return ok({ host, port });
}

/** Canonical authority text: `host` for 443, `host:port` otherwise. */
export function formatAuthority(authority: Authority): string {
  return authority.port === DEFAULT_HTTPS_PORT ? authority.host : `${authority.host}:${authority.port}`;
}

/** True when `pattern` is `*.suffix` (the only wildcard form). */
export function isWildcardPattern(pattern: string): boolean {
  return pattern.startsWith('*.');
}

/**
 * Parse a policy host as an operator gives it (`--host`, the operator API's `hosts`/`host`) into its
 * canonical stored form, or fail (`policy_violation`) saying why. The ONE host-pattern rule, used when a
 * host is set (create/update) and when stored files are validated; invoke re-checks the stored value with
 * parseAuthority under the same `allowPort`. Accepted: a DNS name (lower-cased, IDN → punycode, one
 * trailing dot dropped), or `*.suffix` where suffix is such a name with at least two labels (`*.com`
 * would match every site). Refused: scheme, userinfo, path, query, IP literals, single-label names, a
 * `*` anywhere else, and any port but 443 unless `allowPort` (dev vaults with
 * AIVAULT_DEV_ALLOW_NON_DEFAULT_PORTS, the only case invoke would dial it).
 */
export function parseHostPattern(raw: string, options: HostOptions = {}): Result<string> {
  if (typeof raw !== 'string' || raw.trim() === '') return fail('policy_violation', 'host is empty');
  const text = raw.trim();
  const wildcard = isWildcardPattern(text);
  const body = wildcard ? text.slice(2) : text;
  if (body.includes('*')) {
    return fail('policy_violation', 'a wildcard must be the whole first label (*.example.com)');
  }
  const name = body.split(':')[0]?.replace(/\.$/, '') ?? '';
  if (wildcard && name.split('.').filter((l) => l !== '').length < 2) {
    return fail('policy_violation', 'wildcard is too wide: *.suffix needs a suffix of at least two labels');
  }
  const parsed = parseAuthority(body, options);
  if (!parsed.ok) return parsed;
  return ok((wildcard ? '*.' : '') + formatAuthority(parsed.value));
}

/** A stored policy host: exactly the canonical form parseHostPattern produces. */
export function isValidHostPattern(pattern: string, options: HostOptions = {}): boolean {
  const parsed = parseHostPattern(pattern, options);
  return parsed.ok && parsed.value === pattern;
}

function splitPort(authority: string): [string, string] {
  const colon = authority.lastIndexOf(':');
  return colon === -1 ? [authority, ''] : [authority.slice(0, colon), authority.slice(colon)];
}

/**
 * Match a canonical host (authority) against a canonical pattern. Exact equality, or for `*.suffix`
 * exactly one non-empty leading label followed by `.suffix`: `a.example.com` yes; `a.b.example.com`,
 * the apex `example.com`, `evil-example.com` and `example.com.evil.com` no. Ports must be equal.
 * Both sides must already be normalized (policy data is normalized when stored, callers never supply hosts).
 */
export function matchHost(pattern: string, host: string): boolean {
  if (!isWildcardPattern(pattern)) return pattern === host;
  const [patternName, patternPort] = splitPort(pattern);
  const [hostName, hostPort] = splitPort(host);
  if (patternPort !== hostPort) return false;
  const suffix = patternName.slice(1); // ".example.com"
  if (hostName.length <= suffix.length || !hostName.endsWith(suffix)) return false;
  const label = hostName.slice(0, hostName.length - suffix.length);
  return label.length > 0 && !label.includes('.') && label !== '*';
}

/**
 * Pure helpers for the loopback HTTP listener: listen-address parsing, the loopback peer check, proxy
 * token extraction, and passthrough capability matching (`/v/{credential}/…`). No I/O.
 *
 * Passthrough matching only picks the capability id that labels the call (most specific path prefix
 * wins); the request worker then runs the full broker policy (checkRequest) on the resulting envelope,
 * so matching here can never widen what policy allows.
 */
import { createRequire } from 'node:module';
import type * as IpaddrNs from 'ipaddr.js';
import { AivaultError, fail, ok, type Result } from '../errors.js';
import type { BrokerSnapshot, Capability, Credential } from '../broker/types.js';
import type { RegistryIndex } from '../registry/types.js';
import { effectiveHost } from '../broker/policy.js';
import { isUnderPrefix, normalizePath } from '../broker/path.js';
import { capabilityFromRegistry, tokenAllowsCapability } from '../broker/resolve-capability.js';

// ipaddr.js is CommonJS with `export =` (see broker/addresses.ts for why createRequire).
const ipaddr = createRequire(import.meta.url)('ipaddr.js') as typeof IpaddrNs;
type IP = InstanceType<typeof IpaddrNs.IPv4> | InstanceType<typeof IpaddrNs.IPv6>;

export const DEFAULT_HTTP_PORT = 19790;

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** `127.0.0.1:19790`, `[::1]:19790`, `localhost:0`, or a bare port (→ 127.0.0.1). */
export function parseListenAddress(text: string, flag = '--http'): ListenAddress {
  const t = text.trim();
  let host = '127.0.0.1';
  let portText = t;
  const m6 = /^\[([^\]]+)\]:(\d+)$/.exec(t);
  if (m6) {
    host = m6[1] as string;
    portText = m6[2] as string;
  } else if (t.includes(':')) {
    const i = t.lastIndexOf(':');
    host = t.slice(0, i);
    portText = t.slice(i + 1);
  }
  if (host === 'localhost') host = '127.0.0.1';
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new AivaultError(
      'usage',
      `${flag} ${JSON.stringify(text)}: expected host:port, e.g. 127.0.0.1:19790`,
    );
  }
  if (!ipaddr.isValid(host)) {
    throw new AivaultError('usage', `${flag} ${JSON.stringify(text)}: the host must be an IP address`);
  }
  return { host, port };
}

/** Is a listen host a loopback address? */
export function isLoopbackHost(host: string): boolean {
  return isLoopbackPeer(host);
}

/**
 * Is this peer on the machine's loopback? `''` is a unix-socket peer (uWS reports no address), which is
 * local by construction. IPv4-mapped IPv6 (`::ffff:127.0.0.1`) counts as IPv4. Anything unparseable is
 * treated as remote (fail closed).
 */
export function isLoopbackPeer(address: string): boolean {
  if (address === '') return true;
  let parsed: IP;
  try {
    parsed = ipaddr.parse(address);
  } catch {
    return false;
  }
  if (parsed.kind() === 'ipv6') {
    const v6 = parsed as InstanceType<typeof IpaddrNs.IPv6>;
    if (v6.isIPv4MappedAddress()) parsed = v6.toIPv4Address();
  }
  return parsed.range() === 'loopback';
}

/**
 * Is a browser `Origin` (sent on every WebSocket upgrade a web page makes) on this machine's loopback?
 * `http(s)://` + 127.0.0.0/8, `[::1]` (IPv4-mapped forms included) or `localhost`, any port. `null`,
 * other schemes and anything unparseable are not (fail closed).
 */
export function isLoopbackOrigin(origin: string): boolean {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  if (url.username !== '' || url.password !== '') return false;
  let host = url.hostname;
  if (host === 'localhost') return true;
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return host !== '' && isLoopbackPeer(host);
}

/** The proxy token from `Authorization: Bearer …` (any route) or the SDK key headers (passthrough only). */
export function extractToken(
  headers: { authorization?: string; 'x-api-key'?: string; 'x-goog-api-key'?: string },
  passthrough: boolean,
): string | undefined {
  const auth = headers.authorization?.trim();
  if (auth) {
    const m = /^Bearer\s+(\S+)$/i.exec(auth);
    if (m) return m[1];
    return undefined;
  }
  if (!passthrough) return undefined;
  return headers['x-api-key']?.trim() || headers['x-goog-api-key']?.trim() || undefined;
}

/** Split `/v/{credential}/rest` → credential id + rest path (at least `/`). */
export function splitPassthroughPath(url: string): { credential: string; rest: string } | undefined {
  if (!url.startsWith('/v/')) return undefined;
  const after = url.slice(3);
  const slash = after.indexOf('/');
  const credential = slash === -1 ? after : after.slice(0, slash);
  if (!credential) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(credential);
  } catch {
    return undefined;
  }
  return { credential: decoded, rest: slash === -1 ? '/' : after.slice(slash) };
}

export interface PassthroughMatch {
  /** The most specific matching capability (longest matching path prefix). */
  readonly capability: string;
  /** Every matching capability id (for the audit trail / debugging). */
  readonly matches: readonly string[];
}

/**
 * Match METHOD + path against the capabilities of the credential's provider (registry + custom ones on
 * this credential) that the token grants and whose host intersects the credential's hosts.
 */
export function matchPassthrough(input: {
  readonly snapshot: BrokerSnapshot;
  readonly registry: RegistryIndex;
  readonly credentialId: string;
  readonly method: string;
  readonly path: string;
  readonly tokenCapabilities?: readonly string[];
}): Result<PassthroughMatch> {
  const { snapshot, registry } = input;
  const credential: Credential | undefined = snapshot.credentials.get(input.credentialId);
  if (!credential) {
    return fail('credential_not_found', `no credential ${input.credentialId}`, {
      credential: input.credentialId,
    });
  }
  const normalized = normalizePath(input.path);
  if (!normalized.ok) return normalized;
  const path = normalized.value.path;
  const candidates: Capability[] = [];
  const provider = registry.getProvider(credential.provider);
  if (provider) for (const c of provider.capabilities) candidates.push(capabilityFromRegistry(c));
  for (const c of snapshot.capabilities.values()) {
    if (c.source === 'custom' && c.credentialId === credential.id && c.provider === credential.provider) {
      candidates.push(c);
    }
  }
  const matches: { id: string; prefix: number }[] = [];
  let outOfScope = 0;
  for (const cap of candidates) {
    if (!cap.allow.methods.includes(input.method as Capability['allow']['methods'][number])) continue;
    let best = -1;
    for (const prefix of cap.allow.pathPrefixes) {
      if (isUnderPrefix(path, prefix) && prefix.length > best) best = prefix.length;
    }
    if (best < 0) continue;
    if (!effectiveHost(cap, credential).ok) continue;
    if (input.tokenCapabilities && !tokenAllowsCapability(input.tokenCapabilities, cap)) {
      outOfScope++;
      continue;
    }
    matches.push({ id: cap.id, prefix: best });
  }
  if (matches.length === 0) {
    return outOfScope > 0
      ? fail('policy_violation', `the proxy token grants no capability that allows ${input.method} ${path}`, {
          credential: credential.id,
        })
      : fail('policy_violation', `no ${credential.provider} capability allows ${input.method} ${path}`, {
          credential: credential.id,
        });
  }
  matches.sort((a, b) => b.prefix - a.prefix || a.id.localeCompare(b.id));
  return ok({ capability: (matches[0] as { id: string }).id, matches: matches.map((m) => m.id) });
}

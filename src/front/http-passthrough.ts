/**
 * Pure helpers for the loopback HTTP listener (main thread): listen-address parsing, the loopback peer
 * check, proxy token extraction, and splitting a `/v/{credential}/…` path. No I/O. The passthrough
 * capability match itself runs in the request worker (src/core/broker/passthrough.ts).
 */
import { createRequire } from 'node:module';
import type * as IpaddrNs from 'ipaddr.js';
import { AivaultError } from '../core/errors.js';

// ipaddr.js is CommonJS with `export =` (see core/broker/addresses.ts for why createRequire).
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
  // Asked on every request of the HTTP listener, nearly always for the same one or two addresses: parsing
  // with ipaddr.js each time was 1.6% of the main thread on /v/ (issue 12). Bounded: cleared when full.
  const known = peerCache.get(address);
  if (known !== undefined) return known;
  const loopback = parseLoopback(address);
  if (peerCache.size >= PEER_CACHE_MAX) peerCache.clear();
  peerCache.set(address, loopback);
  return loopback;
}

const PEER_CACHE_MAX = 256;
const peerCache = new Map<string, boolean>();

function parseLoopback(address: string): boolean {
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

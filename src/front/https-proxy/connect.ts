/**
 * Pure helpers of the HTTPS proxy (main thread, no I/O): the CONNECT target, the proxy credentials
 * (`Proxy-Authorization: Basic`), placeholder keys, and the raw status replies written on the client
 * socket before any TLS. Unit-tested on their own (test/unit/daemon/https-proxy-connect.test.ts).
 */
import { STATUS_CODES } from 'node:http';
import { isIP } from 'node:net';
import { AivaultError } from '../../core/errors.js';

/** The user name the proxy expects in `http://aivault:<token>@127.0.0.1:PORT` (informative only). */
export const PROXY_USER = 'aivault';

export interface ConnectTarget {
  /** Lower-case host name or IP (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  /** The host as policy data spells it: `host` for 443, `host:port` otherwise. */
  readonly policyHost: string;
}

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*\.?$/;

/**
 * `CONNECT host:port` → the target. Only authority form (RFC 9110 §9.3.6) with an explicit port; IPv6 in
 * brackets. Anything else is `invalid_request` (answered 400).
 */
export function parseConnectTarget(target: string): ConnectTarget {
  const bad = (): AivaultError =>
    new AivaultError(
      'invalid_request',
      `CONNECT target ${JSON.stringify(target.slice(0, 300))} is not host:port`,
    );
  const m6 = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(target);
  const m = m6 ?? /^([^:/?#@[\]\s]+):(\d{1,5})$/.exec(target);
  if (!m) throw bad();
  const host = (m[1] as string).toLowerCase().replace(/\.$/, '');
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw bad();
  if (m6 ? isIP(host) !== 6 : isIP(host) === 0 && !HOSTNAME.test(host)) throw bad();
  const hostPart = m6 ? `[${host}]` : host;
  return { host, port, policyHost: port === 443 ? hostPart : `${hostPart}:${port}` };
}

/**
 * The proxy token from `Proxy-Authorization: Basic base64(user:password)`. The token is the password
 * (`aivault:<token>`); a bare `<token>@` URL puts it in the user name with an empty password, which is
 * accepted too. Anything else → undefined (answered 407).
 */
export function proxyTokenFrom(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const m = /^Basic\s+([A-Za-z0-9+/=_-]+)\s*$/i.exec(header.trim());
  if (!m) return undefined;
  const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  const user = colon === -1 ? decoded : decoded.slice(0, colon);
  const password = colon === -1 ? '' : decoded.slice(colon + 1);
  const token = password !== '' ? password : user;
  // URL-encoded credentials stay encoded in some clients; our tokens are base64url, so decoding is safe.
  let out = token;
  try {
    out = decodeURIComponent(token);
  } catch {
    return undefined;
  }
  return out === '' ? undefined : out;
}

/** A complete HTTP/1.1 reply for the raw client socket (before TLS), closing the connection. */
export function rawReply(
  status: number,
  body: { error: string; message: string } | undefined,
  extra: Readonly<Record<string, string>> = {},
): string {
  const payload = body ? JSON.stringify(body) : '';
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Status'}`];
  for (const [k, v] of Object.entries(extra)) lines.push(`${k}: ${v}`);
  if (body) lines.push('Content-Type: application/json');
  lines.push(`Content-Length: ${Buffer.byteLength(payload)}`, 'Connection: close', '', payload);
  return lines.join('\r\n');
}

/** The 407 every unauthenticated CONNECT gets. */
export function proxyAuthRequired(message: string): string {
  return rawReply(
    407,
    { error: 'token_invalid', message },
    { 'Proxy-Authenticate': 'Basic realm="aivault"' },
  );
}

/**
 * Placeholder keys `aivault run` gives a child in place of real keys: `aivault-placeholder-<provider>-<hex>`.
 * The provider is part of the value, so the proxy can tell which provider's host it belongs to.
 */
export const PLACEHOLDER_PREFIX = 'aivault-placeholder-';
const PLACEHOLDER_RE = /aivault-placeholder-([a-z0-9][a-z0-9._-]*?)-([0-9a-f]{32})/g;

export function placeholderValue(provider: string, randomHex: string): string {
  return `${PLACEHOLDER_PREFIX}${provider}-${randomHex}`;
}

/** The providers of every placeholder in `text` (also inside a Basic-auth value, which is base64). */
export function placeholderProviders(text: string): string[] {
  const out: string[] = [];
  // Runs on every header of every inner request: the plain substring test spares the regex iterator
  // for the (usual) header without a placeholder.
  const scan = (s: string): void => {
    if (!s.includes(PLACEHOLDER_PREFIX)) return;
    for (const m of s.matchAll(PLACEHOLDER_RE)) out.push(m[1] as string);
  };
  scan(text);
  const basic = /\bBasic\s+([A-Za-z0-9+/=]+)/i.exec(text);
  if (basic) scan(Buffer.from(basic[1] as string, 'base64').toString('utf8'));
  return out;
}

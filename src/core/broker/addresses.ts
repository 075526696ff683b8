/**
 * Connect-time address guard: decides whether an IP the resolver returned may be dialled.
 * Pure and synchronous (the transport hangs it on undici's `connect.lookup`, so DNS rebinding can't
 * slip past a check done at parse time). Never does I/O; anything it cannot classify is forbidden.
 */
import { createRequire } from 'node:module';
import type * as IpaddrNs from 'ipaddr.js';

// ipaddr.js is CommonJS with `export =`; without esModuleInterop the ESM default import does not
// type-check, and a namespace import only exposes `default` at run time. createRequire is pure
// module loading (no fs/net API surface in this file) and runs once at module load.
type IpaddrModule = typeof IpaddrNs;
const ipaddr = createRequire(import.meta.url)('ipaddr.js') as IpaddrModule;
type IPv4 = InstanceType<IpaddrModule['IPv4']>;
type IPv6 = InstanceType<IpaddrModule['IPv6']>;

/**
 * Cloud metadata endpoints, listed explicitly so the intent is visible even though every entry is
 * also inside a forbidden range (link-local, CGNAT, ULA). Compared on the canonical string form.
 */
const METADATA_ADDRESSES: ReadonlySet<string> = new Set([
  '169.254.169.254', // AWS / GCP / Azure / OpenStack
  '169.254.170.2', // AWS ECS task metadata
  '100.100.100.200', // Alibaba Cloud
  '192.0.0.192', // Oracle Cloud (classic)
  'fd00:ec2::254', // AWS IMDS over IPv6
]);

/**
 * ipaddr.js range names that are publicly routable. Everything else it reports (private, loopback,
 * linkLocal, carrierGradeNat, reserved, multicast, broadcast, unspecified, benchmarking, as112, amt,
 * uniqueLocal, discard, orchid, segmentRouting, …) is forbidden. An allowlist, not a denylist, so a
 * range ipaddr.js learns in a future release is refused until someone decides otherwise.
 */
const PUBLIC_RANGES: ReadonlySet<string> = new Set(['unicast']);

/** IPv6 ranges that carry an IPv4 address we must judge instead of the v6 wrapper. */
const EMBEDDING_V6_RANGES: ReadonlySet<string> = new Set(['ipv4Mapped', 'rfc6145', 'rfc6052', '6to4']);

/** Strict decimal dotted quad: `127.1`, `0x7f.0.0.1` and `0177.0.0.1` are refused, not reinterpreted. */
const DOTTED_QUAD = /^(?:0|[1-9]\d{0,2})(?:\.(?:0|[1-9]\d{0,2})){3}$/;

function isForbiddenV4(addr: IPv4): boolean {
  if (METADATA_ADDRESSES.has(addr.toString())) return true;
  return !PUBLIC_RANGES.has(addr.range());
}

/** The IPv4 address carried by an embedding IPv6 form, or undefined if the form is one we refuse. */
function embeddedV4(addr: IPv6, range: string): IPv4 | undefined {
  const p = addr.parts;
  switch (range) {
    case 'ipv4Mapped': // ::ffff:a.b.c.d
    case 'rfc6145': // ::ffff:0:a.b.c.d (SIIT)
      return wordsToV4(p[6], p[7]);
    case 'rfc6052':
      // Only the well-known NAT64 prefix 64:ff9b::/96 has a fixed embedding position; the local-use
      // 64:ff9b:1::/48 can put the v4 anywhere, so it is refused as a whole (returns undefined).
      if (p[2] === 0 && p[3] === 0 && p[4] === 0 && p[5] === 0) return wordsToV4(p[6], p[7]);
      return undefined;
    case '6to4': // 2002:aabb:ccdd::/48 carries a.b.c.d in words 1–2
      return wordsToV4(p[1], p[2]);
    default:
      return undefined;
  }
}

function wordsToV4(hi: number | undefined, lo: number | undefined): IPv4 | undefined {
  if (hi === undefined || lo === undefined) return undefined;
  return new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
}

function isForbiddenV6(addr: IPv6): boolean {
  // Zone ids only make sense on link-local addresses; anything scoped is local by definition.
  if (addr.zoneId !== undefined && addr.zoneId !== '') return true;
  if (METADATA_ADDRESSES.has(addr.toString())) return true;
  const p = addr.parts;
  // ::/96 "IPv4-compatible" (deprecated by RFC 4291; includes :: and ::1). Nothing legitimate uses it,
  // and some stacks still route ::7f00:1 to 127.0.0.1, so the whole block is refused.
  if (p[0] === 0 && p[1] === 0 && p[2] === 0 && p[3] === 0 && p[4] === 0 && p[5] === 0) return true;
  const range = addr.range();
  if (EMBEDDING_V6_RANGES.has(range)) {
    const v4 = embeddedV4(addr, range);
    return v4 === undefined || isForbiddenV4(v4);
  }
  // Teredo (2001::/32) tunnels to an obfuscated client address we cannot vet: refused like other
  // non-unicast ranges.
  return !PUBLIC_RANGES.has(range);
}

/**
 * True when `address` must not be dialled: unspecified, loopback, private, link-local (incl. cloud
 * metadata), CGNAT, multicast, broadcast, reserved/benchmark/documentation ranges, IPv6 ULA/link-local/
 * multicast, IPv4-mapped/compatible/translated forms, NAT64 and 6to4 wrapping a forbidden IPv4, Teredo.
 * Unparseable or non-canonical input → true (fail closed).
 *
 * @example
 * isForbiddenAddress('169.254.169.254'); // true
 * isForbiddenAddress('::ffff:7f00:1');   // true
 * isForbiddenAddress('104.18.7.192');    // false
 */
export function isForbiddenAddress(address: string): boolean {
  if (typeof address !== 'string' || address.length === 0 || address.length > 64) return true;
  let text = address;
  if (text.charCodeAt(0) === 0x5b /* [ */ && text.charCodeAt(text.length - 1) === 0x5d /* ] */) {
    text = text.slice(1, -1);
  }
  try {
    if (text.includes(':')) {
      if (!ipaddr.IPv6.isValid(text)) return true;
      return isForbiddenV6(ipaddr.IPv6.parse(text));
    }
    if (!DOTTED_QUAD.test(text) || !ipaddr.IPv4.isValidFourPartDecimal(text)) return true;
    return isForbiddenV4(ipaddr.IPv4.parse(text));
  } catch {
    return true;
  }
}

/**
 * A plain IP address literal (dotted-quad IPv4 or IPv6 without a zone): what a caller-supplied `clientIp`
 * must be before it is logged. ipaddr.js's own `isValid` also takes `0x7f.1`-style and zone-id forms.
 */
export function isIpLiteral(value: string): boolean {
  if (validLiterals.has(value)) return true;
  const ok =
    ipaddr.IPv4.isValidFourPartDecimal(value) || (ipaddr.IPv6.isValid(value) && !value.includes('%'));
  if (ok) {
    if (validLiterals.size >= VALID_LITERALS_MAX) validLiterals.clear();
    validLiterals.add(value);
  }
  return ok;
}

/**
 * Literals already found valid. Every call's client address is checked (twice) in its request worker and
 * a loopback daemon sees one or two of them; ipaddr.js parses each time (~1% of a worker's CPU per call,
 * issue 12). Only positive answers are kept, so a miss always runs the full check; bounded.
 */
const validLiterals = new Set<string>();
const VALID_LITERALS_MAX = 1024;

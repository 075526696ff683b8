/**
 * Fleet mode settings (issue 18): which Redis holds the shared rate limits, which PostgreSQL receives the
 * central audit copy, and the names that keep fleets and hosts apart. Pure: parsed from an env record
 * handed in by core/config/env.ts (the only env reader) and overridden by aivaultd's flags (front/main.ts).
 * Runs wherever a Config is built (CLI, main thread, workers rebuild it from workerData).
 *
 * URLs may carry a password (redis://:pw@host, postgres://user:pw@host/db): they are kept as given for
 * the client libraries, and every message prints them through `redactUrl` only.
 */
import { hostname } from 'node:os';
import { AivaultError } from '../../core/errors.js';

export interface FleetSettings {
  /** redis:// or rediss:// URL of the shared rate-limit store; unset = local SharedArrayBuffer admission. */
  readonly redisUrl?: string;
  /** Namespace of every Redis key and PostgreSQL row (one budget per capability per fleet). */
  readonly id: string;
  /** Admit calls uncounted while Redis is unreachable (loud warning + audit event); default fail closed. */
  readonly failOpen: boolean;
  /** postgres:// URL of the central audit table; unset = local audit files only. */
  readonly auditPostgresUrl?: string;
  /** This host's name in the central audit table (default: the machine's hostname). */
  readonly node: string;
}

export const DEFAULT_FLEET_ID = 'default';
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

function checkName(what: string, value: string): string {
  if (!NAME_RE.test(value)) {
    throw new AivaultError(
      'usage',
      `${what} must be 1-64 characters of letters, digits, '.', '_' or '-' (starting with a letter or digit)`,
    );
  }
  return value;
}

function checkUrl(what: string, value: string, schemes: readonly string[]): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new AivaultError('usage', `${what} is not a URL (expected ${schemes.join(' or ')}…)`);
  }
  if (!schemes.includes(url.protocol.slice(0, -1))) {
    throw new AivaultError('usage', `${what}: expected a ${schemes.join(' or ')} URL, got ${url.protocol}`);
  }
  return value;
}

/** A URL without its credentials, for messages (`redis://127.0.0.1:6379/0`). */
export function redactUrl(value: string): string {
  try {
    const url = new URL(value);
    url.username = '';
    url.password = '';
    return url.toString();
  } catch {
    return '(unparseable URL)';
  }
}

const truthy = (v: string | undefined): boolean => v !== undefined && !['', '0', 'false'].includes(v);

export interface FleetOverrides {
  readonly redisUrl?: string;
  readonly id?: string;
  readonly failOpen?: boolean;
  readonly auditPostgresUrl?: string;
  readonly node?: string;
}

/**
 * Settings from AIVAULT_FLEET_REDIS, AIVAULT_FLEET_ID, AIVAULT_FLEET_FAIL_OPEN, AIVAULT_FLEET_AUDIT_POSTGRES
 * and AIVAULT_FLEET_NODE, with explicit `overrides` (aivaultd flags) taking precedence. Throws `usage`.
 */
export function parseFleetSettings(
  env: Readonly<Record<string, string | undefined>>,
  overrides: FleetOverrides = {},
): FleetSettings {
  const redis = overrides.redisUrl ?? (env.AIVAULT_FLEET_REDIS || undefined);
  const pg = overrides.auditPostgresUrl ?? (env.AIVAULT_FLEET_AUDIT_POSTGRES || undefined);
  return Object.freeze({
    ...(redis !== undefined ? { redisUrl: checkUrl('--fleet-redis', redis, ['redis', 'rediss']) } : {}),
    ...(pg !== undefined
      ? { auditPostgresUrl: checkUrl('--fleet-audit-postgres', pg, ['postgres', 'postgresql']) }
      : {}),
    id: checkName('--fleet-id', overrides.id ?? (env.AIVAULT_FLEET_ID || DEFAULT_FLEET_ID)),
    failOpen: overrides.failOpen ?? truthy(env.AIVAULT_FLEET_FAIL_OPEN),
    node: checkName('--fleet-node', overrides.node ?? (env.AIVAULT_FLEET_NODE || safeHostname())),
  });
}

function safeHostname(): string {
  const h = hostname()
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .slice(0, 64);
  return NAME_RE.test(h) ? h : 'host';
}

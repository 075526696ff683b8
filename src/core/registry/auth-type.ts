/**
 * The one auth-type lookup: which strategy an auth spec names. Pure, any thread. Used by the auth
 * strategies (to dispatch, from stored policy data) and by the registry (to describe a provider), so both
 * read a spec by the same fail-closed rule: exactly one known strategy key, else `policy_violation`.
 */
import { fail, ok, type Result } from '../errors.js';
import { AUTH_TYPES, type AuthType } from './types.js';

const KNOWN: ReadonlySet<string> = new Set(AUTH_TYPES);

/** The single strategy key of a spec, or a fail-closed error (zero, several or unknown keys). */
export function authTypeOf(spec: unknown): Result<AuthType> {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) {
    return fail('policy_violation', 'auth spec must be an object with exactly one strategy');
  }
  const keys = Object.keys(spec);
  if (keys.length !== 1) {
    return fail('policy_violation', 'auth spec must name exactly one strategy', { count: keys.length });
  }
  const key = keys[0] as string;
  if (!KNOWN.has(key)) return fail('policy_violation', 'unknown auth strategy', { type: key.slice(0, 64) });
  return ok(key as AuthType);
}

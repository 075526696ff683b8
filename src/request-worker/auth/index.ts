/**
 * Auth injection: the strategy table and the fail-closed entry point. `createAuth` accepts exactly one known
 * strategy key per spec; zero, several or unknown keys are a policy violation, a malformed body auth_failed.
 * No I/O and no logging of secrets anywhere under src/request-worker/auth (except oauth2-client.ts, which takes its transport
 * as a parameter).
 */
import { fail, type Result } from '../../core/errors.js';
import type { AuthSpec, AuthType } from '../../core/registry/types.js';
import { authTypeOf } from '../../core/registry/auth-type.js';
import { awsSigV4Strategy } from './aws-sigv4.js';
import { basicStrategy } from './basic.js';
import { headerStrategy } from './header.js';
import { hmacStrategy } from './hmac.js';
import { mtlsStrategy } from './mtls.js';
import { multiHeaderStrategy } from './multi-header.js';
import { multiQueryStrategy } from './multi-query.js';
import { oauth2Strategy } from './oauth2.js';
import { pathStrategy } from './path.js';
import { queryStrategy } from './query.js';
import type { AuthApply, AuthEnv, AuthParams, AuthStrategies, AuthStrategy } from './strategy.js';

export const AUTH_STRATEGIES: AuthStrategies = Object.freeze({
  header: headerStrategy,
  query: queryStrategy,
  path: pathStrategy,
  basic: basicStrategy,
  multi_header: multiHeaderStrategy,
  multi_query: multiQueryStrategy,
  oauth2: oauth2Strategy,
  aws_sigv4: awsSigV4Strategy,
  hmac: hmacStrategy,
  mtls: mtlsStrategy,
});

function bodyOf(spec: AuthSpec, type: AuthType): never {
  return (spec as unknown as Record<string, unknown>)[type] as never;
}

/** Validate + compile a spec once; the returned closure is the per-request hot path. */
export function createAuth(spec: AuthSpec, params: AuthParams = {}, env?: AuthEnv): Result<AuthApply> {
  const type = authTypeOf(spec);
  if (!type.ok) return type;
  const strategy = AUTH_STRATEGIES[type.value] as AuthStrategy<AuthType>;
  const body = bodyOf(spec, type.value);
  const wantsList = type.value === 'multi_header' || type.value === 'multi_query';
  if (typeof body !== 'object' || body === null || Array.isArray(body) !== wantsList) {
    return fail('auth_failed', `${type.value} auth spec must be ${wantsList ? 'a list' : 'an object'}`);
  }
  return strategy.create(body, params, env);
}

const headerCache = new WeakMap<object, readonly string[]>();
const queryCache = new WeakMap<object, readonly string[]>();

/**
 * Lower-case header names this spec injects; the policy layer rejects caller-supplied ones for managed
 * credentials. Cached per spec object. A malformed spec yields `[]` (createAuth fails on it anyway).
 */
export function authClassHeaderNames(spec: AuthSpec): readonly string[] {
  const cached = headerCache.get(spec);
  if (cached !== undefined) return cached;
  const type = authTypeOf(spec);
  const names = type.ok
    ? Object.freeze([
        ...new Set(
          (AUTH_STRATEGIES[type.value] as AuthStrategy<AuthType>).headerNames(bodyOf(spec, type.value)),
        ),
      ])
    : Object.freeze([]);
  headerCache.set(spec, names);
  return names;
}

/** Query parameter names this spec injects (decoded), for the same caller-override check. */
export function authClassQueryNames(spec: AuthSpec): readonly string[] {
  const cached = queryCache.get(spec);
  if (cached !== undefined) return cached;
  const type = authTypeOf(spec);
  const names = type.ok
    ? Object.freeze([
        ...new Set(
          (AUTH_STRATEGIES[type.value] as AuthStrategy<AuthType>).queryNames(bodyOf(spec, type.value)),
        ),
      ])
    : Object.freeze([]);
  queryCache.set(spec, names);
  return names;
}

export { SecretValues } from './secrets.js';
export { applyAuthTarget, redactUrl, REDACTION_MARK, secretValuesForRedaction } from './strategy.js';
export { buildConsentUrl, pkceChallenge, type ConsentUrl, type ConsentUrlInput } from './oauth-setup.js';
export type {
  AuthApply,
  AuthEnv,
  AuthInput,
  AuthOutput,
  AuthParams,
  AuthSpecBody,
  AuthStrategies,
  AuthStrategy,
  HeaderPair,
  TlsClientAuth,
} from './strategy.js';
export {
  applyTokenGrant,
  buildTokenRequest,
  needsRefresh,
  parseOAuth2Secret,
  parseTokenResponse,
  readOAuth2State,
  serializeOAuth2Secret,
} from './oauth2.js';
export type { OAuth2Spec, OAuth2TokenState, TokenGrant, TokenRequest } from './oauth2.js';

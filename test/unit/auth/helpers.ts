import {
  createAuth,
  SecretValues,
  type AuthEnv,
  type AuthInput,
  type AuthOutput,
} from '../../../src/request-worker/auth/index.js';
import type { AivaultError, Result } from '../../../src/core/errors.js';
import type { AuthSpec } from '../../../src/core/registry/types.js';

export const INPUT: AuthInput = {
  method: 'GET',
  host: 'api.example.com',
  path: '/v1/items',
  query: '',
  headers: [],
  body: new Uint8Array(0),
};

export async function apply(
  spec: AuthSpec,
  secrets: Record<string, string>,
  input: Partial<AuthInput> = {},
  params: Record<string, string> = {},
  env?: AuthEnv,
): Promise<Result<AuthOutput>> {
  const auth = createAuth(spec, params, env);
  if (!auth.ok) return auth;
  return auth.value({ ...INPUT, ...input }, SecretValues.from(secrets));
}

/** The error code of a failed Result, or 'ok'. */
export function codeOf(result: Result<unknown, AivaultError>): string {
  return result.ok ? 'ok' : result.error.code;
}

export function must<T>(result: Result<T>): T {
  if (!result.ok) throw result.error;
  return result.value;
}

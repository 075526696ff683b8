/**
 * One contract every auth strategy must meet (run from test/unit/auth/contract.test.ts, one case per type).
 * Each case gives a working spec + secrets; the suite checks fail-closed behaviour and output hygiene.
 */
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  applyAuthTarget,
  authClassHeaderNames,
  authClassQueryNames,
  createAuth,
  redactUrl,
  SecretValues,
  type AuthEnv,
  type AuthInput,
  type AuthOutput,
} from '../../src/request-worker/auth/index.js';
import type { AuthSpec } from '../../src/core/registry/types.js';

export interface AuthContractCase {
  readonly name: string;
  readonly spec: AuthSpec;
  /** Placeholder → secret value that makes the strategy succeed. */
  readonly secrets: Readonly<Record<string, string>>;
  readonly params?: Readonly<Record<string, string>>;
  readonly input?: Partial<AuthInput>;
  /** A variant of `spec` whose template names a placeholder the secrets do not have. */
  readonly unknownPlaceholderSpec?: AuthSpec;
  /** Secrets whose value carries CR/LF into a header: must fail closed (header strategies). */
  readonly crlfSecrets?: Readonly<Record<string, string>>;
  /** Secret strings that must never appear in printed (redacted) URLs. */
  readonly urlSecretValues?: readonly string[];
}

const FIXED_NOW = Date.UTC(2026, 0, 2, 3, 4, 5);
const env: AuthEnv = { now: () => FIXED_NOW };

export const BASE_INPUT: AuthInput = {
  method: 'POST',
  host: 'api.example.com',
  path: '/v1/things',
  query: 'b=2&a=1',
  headers: [['content-type', 'application/json']],
  body: new TextEncoder().encode('{"x":1}'),
};

async function run(c: AuthContractCase, spec: AuthSpec, secrets: Readonly<Record<string, string>>) {
  const auth = createAuth(spec, c.params ?? {}, env);
  if (!auth.ok) return auth;
  return auth.value({ ...BASE_INPUT, ...c.input }, SecretValues.from(secrets));
}

function allText(out: AuthOutput): string[] {
  return [
    ...out.setHeaders.flat(),
    ...out.appendQuery.flat(),
    ...(out.pathPrefix === undefined ? [] : [out.pathPrefix]),
  ];
}

export function runAuthStrategyContract(cases: readonly AuthContractCase[]): void {
  describe.each(cases.map((c) => [c.name, c] as const))('auth strategy contract: %s', (_name, c) => {
    it('creates once and applies asynchronously with a Result', async () => {
      const auth = createAuth(c.spec, c.params ?? {}, env);
      expect(auth.ok).toBe(true);
      if (!auth.ok) return;
      const pending = auth.value({ ...BASE_INPUT, ...c.input }, SecretValues.from(c.secrets));
      expect(pending).toBeInstanceOf(Promise);
      const out = await pending;
      expect(out.ok).toBe(true);
    });

    it('never emits a template literally and never emits control characters in headers', async () => {
      const out = await run(c, c.spec, c.secrets);
      if (!out.ok) throw out.error;
      for (const text of allText(out.value)) {
        expect(text).not.toContain('{{');
        expect(text).not.toContain('}}');
      }
      for (const [name, value] of out.value.setHeaders) {
        expect(name).toBe(name.toLowerCase());
        expect(value).not.toMatch(/[\r\n\0]/);
      }
    });

    it('authClassHeaderNames / authClassQueryNames cover everything it injects', async () => {
      const out = await run(c, c.spec, c.secrets);
      if (!out.ok) throw out.error;
      const headers = authClassHeaderNames(c.spec);
      for (const [name] of out.value.setHeaders) expect(headers).toContain(name);
      const queries = authClassQueryNames(c.spec);
      for (const [name] of out.value.appendQuery) expect(queries).toContain(decodeURIComponent(name));
    });

    it('is deterministic for the same input and clock', async () => {
      const a = await run(c, c.spec, c.secrets);
      const b = await run(c, c.spec, c.secrets);
      expect(a).toEqual(b);
    });

    it('fails closed without secrets', async () => {
      const out = await run(c, c.spec, {});
      expect(out.ok).toBe(false);
      if (!out.ok) expect(['auth_failed', 'oauth_refresh_required']).toContain(out.error.code);
    });

    if (c.unknownPlaceholderSpec !== undefined) {
      const unknownSpec = c.unknownPlaceholderSpec;
      it('fails closed (auth_failed) on an unknown placeholder', async () => {
        const out = await run(c, unknownSpec, c.secrets);
        expect(out.ok ? 'ok' : out.error.code).toBe('auth_failed');
      });
    }

    if (c.crlfSecrets !== undefined) {
      const crlf = c.crlfSecrets;
      it('fails closed (auth_failed) when a secret would put CR/LF into a header', async () => {
        const out = await run(c, c.spec, crlf);
        expect(out.ok ? 'ok' : out.error.code).toBe('auth_failed');
      });
    }

    it('redactUrl hides every URL-borne secret', async () => {
      const out = await run(c, c.spec, c.secrets);
      if (!out.ok) throw out.error;
      const target = applyAuthTarget(BASE_INPUT.path, BASE_INPUT.query, out.value);
      const url = `https://api.example.com${target.path}?${target.query}`;
      const printed = redactUrl(url, out.value.urlSecrets);
      for (const secret of [...out.value.urlSecrets, ...(c.urlSecretValues ?? [])]) {
        expect(printed).not.toContain(secret);
      }
      const all = redactUrl(url, SecretValues.from(c.secrets).valuesForRedaction());
      for (const secret of c.urlSecretValues ?? []) expect(all).not.toContain(secret);
    });

    it('secret holders never print their values', () => {
      const secrets = SecretValues.from(c.secrets);
      const printed = `${JSON.stringify({ secrets })} ${inspect(secrets)} ${String(secrets)}`;
      for (const value of secrets.valuesForRedaction()) expect(printed).not.toContain(value);
    });

    it('rejects a spec with an extra strategy key (policy_violation)', () => {
      const spec = {
        ...c.spec,
        header: { header_name: 'x', value_template: '{{secret}}' },
        query: { param_name: 'k' },
      };
      const auth = createAuth(spec as unknown as AuthSpec);
      expect(auth.ok ? 'ok' : auth.error.code).toBe('policy_violation');
    });
  });
}

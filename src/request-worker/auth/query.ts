/**
 * query: one query parameter (`param_name`, value from `value_template`, default `{{secret}}`), appended
 * percent-encoded (RFC 3986). The encoded value is reported in `urlSecrets` for redaction.
 */
import { fail, ok, type Result } from '../../core/errors.js';
import type { QueryTemplate } from '../../core/registry/types.js';
import type { AuthStrategy, HeaderPair, SecretValues } from './strategy.js';
import { compileTemplate, encodeRfc3986, renderTemplate, type CompiledTemplate } from './template.js';

export const DEFAULT_QUERY_TEMPLATE = '{{secret}}';

export interface CompiledQuery {
  /** Encoded parameter name. */
  readonly name: string;
  readonly template: CompiledTemplate;
}

/** Validate + compile one query template. */
export function compileQuery(spec: QueryTemplate | undefined, what: string): Result<CompiledQuery> {
  const name = spec?.param_name;
  if (typeof name !== 'string' || name.length === 0) {
    return fail('auth_failed', `${what}.param_name must be a non-empty string`);
  }
  const template = compileTemplate(spec?.value_template ?? DEFAULT_QUERY_TEMPLATE, `${what}.value_template`);
  if (!template.ok) return template;
  return ok({ name: encodeRfc3986(name), template: template.value });
}

/** Render compiled query params into encoded pairs (+ their values for redaction). */
export function renderQueries(
  queries: readonly CompiledQuery[],
  secrets: SecretValues,
  what: string,
): Result<{ appendQuery: HeaderPair[]; urlSecrets: string[] }> {
  const appendQuery: HeaderPair[] = [];
  const urlSecrets: string[] = [];
  const lookup = (n: string) => secrets.get(n);
  for (const q of queries) {
    const raw = renderTemplate(q.template, lookup, `${what} ${q.name}`);
    if (!raw.ok) return raw;
    const value = encodeRfc3986(raw.value);
    appendQuery.push([q.name, value]);
    if (value.length > 0) urlSecrets.push(value);
  }
  return ok({ appendQuery, urlSecrets });
}

export const queryStrategy = {
  type: 'query',
  create(spec) {
    const compiled = compileQuery(spec, 'query');
    if (!compiled.ok) return compiled;
    const queries = [compiled.value];
    return ok(async (_input, secrets) => {
      const rendered = renderQueries(queries, secrets, 'query');
      if (!rendered.ok) return rendered;
      return ok({ setHeaders: [], ...rendered.value });
    });
  },
  headerNames: () => [],
  queryNames: (spec) => (typeof spec?.param_name === 'string' ? [spec.param_name] : []),
} satisfies AuthStrategy<'query'>;

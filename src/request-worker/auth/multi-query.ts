/**
 * multi_query: several query parameters from templates (e.g. Trello `key={{api_key}}&token={{token}}`).
 * Duplicate parameter names fail closed at create time.
 */
import { fail, ok } from '../../core/errors.js';
import type { AuthStrategy } from './strategy.js';
import { compileQuery, renderQueries, type CompiledQuery } from './query.js';

export const multiQueryStrategy = {
  type: 'multi_query',
  create(spec) {
    if (!Array.isArray(spec) || spec.length === 0) {
      return fail('auth_failed', 'multi_query must be a non-empty list of parameters');
    }
    const queries: CompiledQuery[] = [];
    const seen = new Set<string>();
    for (const [i, entry] of spec.entries()) {
      const compiled = compileQuery(entry, `multi_query[${i}]`);
      if (!compiled.ok) return compiled;
      if (seen.has(compiled.value.name)) {
        return fail('auth_failed', `multi_query[${i}].param_name is a duplicate`);
      }
      seen.add(compiled.value.name);
      queries.push(compiled.value);
    }
    return ok(async (_input, secrets) => {
      const rendered = renderQueries(queries, secrets, 'multi_query');
      if (!rendered.ok) return rendered;
      return ok({ setHeaders: [], ...rendered.value });
    });
  },
  headerNames: () => [],
  queryNames: (spec) =>
    Array.isArray(spec) ? spec.flatMap((q) => (typeof q?.param_name === 'string' ? [q.param_name] : [])) : [],
} satisfies AuthStrategy<'multi_query'>;

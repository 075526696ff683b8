/**
 * multi_header: several headers, each from its own template (e.g. Datadog `dd-api-key: {{api_key}}` and
 * `dd-application-key: {{app_key}}` from a JSON secret). Duplicate names fail closed at create time.
 */
import { fail, ok } from '../../core/errors.js';
import type { AuthStrategy, HeaderPair } from './strategy.js';
import { headerNamesOf } from './header.js';
import { checkHeaderName, compileTemplate, renderHeaderValue, type CompiledTemplate } from './template.js';

export const multiHeaderStrategy = {
  type: 'multi_header',
  create(spec) {
    if (!Array.isArray(spec) || spec.length === 0) {
      return fail('auth_failed', 'multi_header must be a non-empty list of headers');
    }
    const compiled: [string, CompiledTemplate][] = [];
    const seen = new Set<string>();
    for (const [i, entry] of spec.entries()) {
      const name = checkHeaderName(entry?.header_name, `multi_header[${i}].header_name`);
      if (!name.ok) return name;
      if (seen.has(name.value)) {
        return fail('auth_failed', `multi_header[${i}].header_name is a duplicate`, { header: name.value });
      }
      seen.add(name.value);
      const template = compileTemplate(entry.value_template, `multi_header[${i}].value_template`);
      if (!template.ok) return template;
      compiled.push([name.value, template.value]);
    }
    return ok(async (_input, secrets) => {
      const lookup = (n: string) => secrets.get(n);
      const setHeaders: HeaderPair[] = [];
      for (const [name, template] of compiled) {
        const value = renderHeaderValue(template, lookup, `multi_header ${name}`);
        if (!value.ok) return value;
        setHeaders.push([name, value.value]);
      }
      return ok({ setHeaders, appendQuery: [], urlSecrets: [] });
    });
  },
  headerNames: (spec) => headerNamesOf(spec),
  queryNames: () => [],
} satisfies AuthStrategy<'multi_header'>;

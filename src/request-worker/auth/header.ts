/**
 * header: one header rendered from `value_template` (e.g. `authorization: Bearer {{secret}}`).
 * Never sets transport-owned headers; CR/LF/NUL in the rendered value fails closed.
 */
import { ok } from '../../core/errors.js';
import type { HeaderTemplate } from '../../core/registry/types.js';
import type { AuthStrategy, AuthOutput, HeaderPair } from './strategy.js';
import { checkHeaderName, compileTemplate, renderHeaderValue } from './template.js';

export const headerStrategy = {
  type: 'header',
  create(spec) {
    const name = checkHeaderName(spec?.header_name, 'header.header_name');
    if (!name.ok) return name;
    const template = compileTemplate(spec.value_template, 'header.value_template');
    if (!template.ok) return template;
    const headerName = name.value;
    const compiled = template.value;
    return ok(async (_input, secrets) => {
      const value = renderHeaderValue(compiled, (n) => secrets.get(n), 'header.value_template');
      if (!value.ok) return value;
      const setHeaders: HeaderPair[] = [[headerName, value.value]];
      const out: AuthOutput = { setHeaders, appendQuery: [], urlSecrets: [] };
      return ok(out);
    });
  },
  headerNames: (spec: HeaderTemplate) => headerNamesOf([spec]),
  queryNames: () => [],
} satisfies AuthStrategy<'header'>;

/** Lower-cased names of valid header templates (malformed entries are skipped). */
export function headerNamesOf(templates: readonly HeaderTemplate[] | undefined): string[] {
  const out: string[] = [];
  if (!Array.isArray(templates)) return out;
  for (const t of templates as readonly unknown[]) {
    const name = (t as Partial<HeaderTemplate> | null)?.header_name;
    if (typeof name === 'string' && name.length > 0) out.push(name.toLowerCase());
  }
  return out;
}

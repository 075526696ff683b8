/**
 * path: a path prefix rendered from `prefix_template` (Telegram `/bot{{secret}}`), prepended to the request
 * path by the transport. Each substituted value is encoded to stay within one path segment; the rendered
 * prefix never contains empty, `.` or `..` segments. Substituted values are reported in `urlSecrets`.
 */
import { fail, ok, type Result } from '../../core/errors.js';
import type { AuthStrategy } from './strategy.js';
import { compileTemplate, encodePathSegment, renderTemplate } from './template.js';

/** Literal characters allowed in a prefix template: RFC 3986 pchar plus `/` (no `?`, `#`, spaces, `%`). */
const PATH_LITERAL = /^[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$/;

function checkPrefix(prefix: string, what: string): Result<string> {
  if (!prefix.startsWith('/') || prefix.length < 2 || prefix.endsWith('/')) {
    return fail('auth_failed', `${what} must start with '/' and must not end with '/'`);
  }
  for (const segment of prefix.slice(1).split('/')) {
    if (segment === '' || segment === '.' || segment === '..') {
      return fail('auth_failed', `${what} has an empty or dot path segment`);
    }
  }
  return ok(prefix);
}

export const pathStrategy = {
  type: 'path',
  create(spec) {
    const what = 'path.prefix_template';
    const template = compileTemplate(spec?.prefix_template, what);
    if (!template.ok) return template;
    const compiled = template.value;
    for (const part of compiled.parts) {
      if (typeof part === 'string' && !PATH_LITERAL.test(part)) {
        return fail('auth_failed', `${what} has characters not allowed in a path`);
      }
    }
    if (!compiled.source.startsWith('/')) return fail('auth_failed', `${what} must start with '/'`);
    return ok(async (_input, secrets) => {
      const urlSecrets: string[] = [];
      const rendered = renderTemplate(compiled, (n) => secrets.get(n), what, encodePathSegment, urlSecrets);
      if (!rendered.ok) return rendered;
      const prefix = checkPrefix(rendered.value, what);
      if (!prefix.ok) return prefix;
      return ok({ setHeaders: [], appendQuery: [], pathPrefix: prefix.value, urlSecrets });
    });
  },
  headerNames: () => [],
  queryNames: () => [],
} satisfies AuthStrategy<'path'>;

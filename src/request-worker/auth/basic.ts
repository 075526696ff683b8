/**
 * basic: `authorization: Basic base64(user:pass)` (RFC 7617, UTF-8).
 * Secret shapes: with `username_template`/`password_template`, those render from placeholders. Without
 * them: `{{username}}` + `{{password}}` when the secret provides both (JSON `{"username","password"}`),
 * otherwise the single `{{secret}}` in the form `user:pass` (split at the first colon). A username with a
 * colon, or a control character anywhere, fails closed.
 */
import { fail, ok, type Result } from '../../core/errors.js';
import type { AuthStrategy, SecretValues } from './strategy.js';
import { compileTemplate, isSafeHeaderValue, renderTemplate, type CompiledTemplate } from './template.js';

function credentials(
  username: CompiledTemplate | undefined,
  password: CompiledTemplate | undefined,
  secrets: SecretValues,
): Result<[string, string]> {
  const lookup = (n: string) => secrets.get(n);
  if (username !== undefined || password !== undefined) {
    const user =
      username === undefined ? ok('') : renderTemplate(username, lookup, 'basic.username_template');
    if (!user.ok) return user;
    const pass =
      password === undefined ? ok('') : renderTemplate(password, lookup, 'basic.password_template');
    if (!pass.ok) return pass;
    return ok([user.value, pass.value]);
  }
  const user = secrets.get('username');
  const pass = secrets.get('password');
  if (user !== undefined && pass !== undefined) return ok([user, pass]);
  const single = secrets.get('secret');
  if (single === undefined)
    return fail('auth_failed', 'basic auth needs username/password or a user:pass secret');
  const colon = single.indexOf(':');
  if (colon < 0) return fail('auth_failed', 'basic auth secret must have the form user:pass');
  return ok([single.slice(0, colon), single.slice(colon + 1)]);
}

export const basicStrategy = {
  type: 'basic',
  create(spec) {
    let username: CompiledTemplate | undefined;
    let password: CompiledTemplate | undefined;
    if (spec?.username_template !== undefined) {
      const t = compileTemplate(spec.username_template, 'basic.username_template');
      if (!t.ok) return t;
      username = t.value;
    }
    if (spec?.password_template !== undefined) {
      const t = compileTemplate(spec.password_template, 'basic.password_template');
      if (!t.ok) return t;
      password = t.value;
    }
    return ok(async (_input, secrets) => {
      const creds = credentials(username, password, secrets);
      if (!creds.ok) return creds;
      const [user, pass] = creds.value;
      if (user.includes(':')) return fail('auth_failed', 'basic auth username must not contain a colon');
      if (
        !isSafeHeaderValue(user) ||
        !isSafeHeaderValue(pass) ||
        user.includes('\t') ||
        pass.includes('\t')
      ) {
        return fail('auth_failed', 'basic auth credentials contain a control character');
      }
      const encoded = Buffer.from(`${user}:${pass}`, 'utf8').toString('base64');
      return ok({ setHeaders: [['authorization', `Basic ${encoded}`]], appendQuery: [], urlSecrets: [] });
    });
  },
  headerNames: () => ['authorization'],
  queryNames: () => [],
} satisfies AuthStrategy<'basic'>;

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isUnderPrefix, normalizePath } from '../../../src/core/broker/path.js';

describe('normalizePath', () => {
  it.each([
    ['/v1/chat/completions', '/v1/chat/completions', ''],
    ['/v1/models?limit=2&after=x', '/v1/models', 'limit=2&after=x'],
    ['/', '/', ''],
    ['/v1/chat/', '/v1/chat/', ''],
    ['/v1/caf%c3%a9', '/v1/caf%C3%A9', ''],
    ['/v1/a%20b', '/v1/a%20b', ''],
    ['/v1/%41BC', '/v1/ABC', ''],
    ['/v1/files/file-abc:def@x', '/v1/files/file-abc:def@x', ''],
    ['/v1/odd%3Fname', '/v1/odd%3Fname', ''],
    ['/v1/..foo', '/v1/..foo', ''],
  ])('%s → %s', (raw, path, query) => {
    const r = normalizePath(raw);
    expect(r.ok && r.value).toEqual({ path, query });
  });

  it.each([
    ['/v1/chat/../../../etc/passwd', 'policy_violation', 'raw ..'],
    ['/v1/chat/..', 'policy_violation', 'trailing ..'],
    ['/v1/%2e%2e/admin', 'policy_violation', '%2e%2e'],
    ['/v1/.%2e/admin', 'policy_violation', '.%2e'],
    ['/v1/%2E%2E/admin', 'policy_violation', '%2E%2E'],
    ['/v1/%2e/admin', 'policy_violation', '%2e dot'],
    ['/v1/./admin', 'policy_violation', '. segment'],
    ['/v1/..;x/admin', 'policy_violation', '..;param'],
    ['/v1/;x/admin', 'policy_violation', ';param empty core'],
    ['/v1/chat%2f..%2fadmin', 'policy_violation', '%2f'],
    ['/v1/chat%2Fadmin', 'policy_violation', '%2F'],
    ['/v1/chat%5c..%5cadmin', 'policy_violation', '%5c'],
    ['/v1/chat\\..\\admin', 'policy_violation', 'backslash'],
    ['/v1//chat', 'policy_violation', '//'],
    ['//evil.com/v1', 'policy_violation', 'leading //'],
    ['/v1/chat%00', 'policy_violation', '%00'],
    ['/v1/chat%0a', 'policy_violation', '%0a'],
    ['/v1/chat%0d%0aHost:x', 'policy_violation', 'CRLF'],
    ['/v1/chat\u0000', 'policy_violation', 'raw NUL'],
    ['/v1/chat\n', 'policy_violation', 'raw LF'],
    ['/v1/%252e%252e/admin', 'policy_violation', 'double-encoded dots'],
    ['/v1/a%252fb', 'policy_violation', 'double-encoded slash'],
    ['/v1?x=%0a', 'policy_violation', 'control in query'],
    ['/v1/chat#frag', 'invalid_request', 'fragment'],
    ['v1/chat', 'invalid_request', 'relative'],
    ['', 'invalid_request', 'empty'],
    ['/v1/é', 'invalid_request', 'raw non-ASCII'],
    ['/v1/a b', 'invalid_request', 'raw space'],
    ['/v1/%zz', 'invalid_request', 'bad escape'],
    ['/v1/%c3', 'invalid_request', 'invalid UTF-8'],
    ['/' + 'a'.repeat(9000), 'invalid_request', 'too long'],
  ])('%s → %s (%s)', (raw, code) => {
    const r = normalizePath(raw);
    expect(r.ok ? 'ok' : r.error.code).toBe(code);
  });
});

describe('isUnderPrefix', () => {
  it.each([
    ['/v1/chat', '/v1/chat', true],
    ['/v1/chat/completions', '/v1/chat', true],
    ['/v1/chatx', '/v1/chat', false],
    ['/v1/chat-evil', '/v1/chat', false],
    ['/v1', '/v1/chat', false],
    ['/anything/at/all', '/', true],
    ['/v1/files/abc', '/v1/files/', true],
    ['/v1/files', '/v1/files/', false],
  ])('%s under %s → %s', (path, prefix, expected) => {
    expect(isUnderPrefix(path, prefix)).toBe(expected);
  });

  const segmentChars = fc.constantFrom(
    'a',
    'b',
    '.',
    '%',
    '2',
    'e',
    'f',
    'E',
    'F',
    '/',
    '\\',
    '5',
    'c',
    ';',
    '?',
    '0',
  );
  const tail = fc.array(segmentChars, { maxLength: 24 }).map((cs) => cs.join(''));
  const prefixes = ['/v1/chat', '/v1/files/', '/'];

  it('property: a path that normalizes never escapes its prefix and holds no dot segment', () => {
    fc.assert(
      fc.property(fc.constantFrom(...prefixes), tail, (prefix, t) => {
        const raw = prefix.endsWith('/') ? prefix + t : `${prefix}/${t}`;
        const r = normalizePath(raw);
        if (!r.ok) return;
        const segments = r.value.path.split('/');
        expect(segments.includes('..')).toBe(false);
        expect(segments.includes('.')).toBe(false);
        // Resolve as a server would (decode once, then apply dot segments): still under the prefix.
        const resolved: string[] = [];
        for (const s of decodeURIComponent(r.value.path).split('/').slice(1)) {
          if (s === '..') resolved.pop();
          else if (s !== '.') resolved.push(s);
        }
        const resolvedPath = `/${resolved.join('/')}`;
        if (isUnderPrefix(r.value.path, prefix)) {
          expect(resolvedPath.startsWith(prefix === '/' ? '/' : prefix.replace(/\/$/, ''))).toBe(true);
        }
      }),
      { numRuns: 3000 },
    );
  });
});

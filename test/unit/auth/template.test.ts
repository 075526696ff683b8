import { describe, expect, it } from 'vitest';
import {
  compileTemplate,
  encodePathSegment,
  encodeRfc3986,
  parseRawQuery,
  renderTemplate,
} from '../../../src/request-worker/auth/template.js';
import { codeOf, must } from './helpers.js';

describe('templates', () => {
  it('compiles once into literal/placeholder parts', () => {
    const t = must(compileTemplate('Bearer {{secret}} / {{ other }}', 't'));
    expect(t.parts).toEqual(['Bearer ', { placeholder: 'secret' }, ' / ', { placeholder: 'other' }]);
    expect(t.placeholders).toEqual(['secret', 'other']);
    expect(Object.isFrozen(t)).toBe(true);
  });

  it('keeps single braces and stray closers literal', () => {
    const t = must(compileTemplate('{a} }} {{x}}', 't'));
    expect(must(renderTemplate(t, () => 'v', 't'))).toBe('{a} }} v');
  });

  it('fails closed at render on unknown placeholders, naming the placeholder only', () => {
    const t = must(compileTemplate('{{known}}{{unknown}}', 't'));
    const res = renderTemplate(t, (n) => (n === 'known' ? 'SECRETVALUE' : undefined), 't');
    expect(codeOf(res)).toBe('auth_failed');
    if (!res.ok) {
      expect(res.error.message).toContain('unknown');
      expect(res.error.message).not.toContain('SECRETVALUE');
    }
  });

  it.each([42, '{{', '{{a', '{{1a}}', '{{a b}}'])('rejects %j', (source) => {
    expect(codeOf(compileTemplate(source, 't'))).toBe('auth_failed');
  });

  it('encodes per destination', () => {
    expect(encodeRfc3986("a b!'()*~-._ሴ")).toBe('a%20b%21%27%28%29%2A~-._%E1%88%B4');
    expect(encodePathSegment('123:abc/..?#% @+')).toBe('123:abc%2F..%3F%23%25%20@+');
    expect(encodePathSegment('.')).toBe('%2E');
  });

  it('parses raw queries (+ stays literal; bad escapes fail)', () => {
    expect(parseRawQuery('a=1&b&c=x+y%20z&&d=')).toEqual([
      ['a', '1'],
      ['b', ''],
      ['c', 'x+y z'],
      ['d', ''],
    ]);
    expect(parseRawQuery('a=%E0%A4%A')).toBeUndefined();
  });
});

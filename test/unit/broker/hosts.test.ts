import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  isValidHostPattern,
  matchHost,
  normalizeHost,
  parseAuthority,
} from '../../../src/core/broker/hosts.js';

describe('normalizeHost', () => {
  it.each([
    ['API.OpenAI.com', 'api.openai.com'],
    ['api.openai.com.', 'api.openai.com'],
    ['bücher.example', 'xn--bcher-kva.example'],
    ['localhost', undefined],
    ['127.0.0.1', undefined],
    ['0x7f.1', undefined],
    ['::1', undefined],
    ['user@api.openai.com', undefined],
    ['api.openai.com:443', undefined],
    ['api..openai.com', undefined],
    ['-bad.example.com', undefined],
    ['', undefined],
  ])('%s → %s', (raw, expected) => {
    expect(normalizeHost(raw)).toBe(expected);
  });
});

describe('parseAuthority', () => {
  it.each([
    ['api.openai.com', {}, 'ok'],
    ['api.openai.com:443', {}, 'ok'],
    ['api.openai.com:8443', {}, 'policy_violation'],
    ['api.openai.com:8443', { allowPort: true }, 'ok'],
    ['user:pw@api.openai.com', {}, 'policy_violation'],
    ['[::1]', {}, 'policy_violation'],
    ['10.0.0.1', {}, 'policy_violation'],
    ['https://api.openai.com', {}, 'policy_violation'],
    ['api.openai.com:0', { allowPort: true }, 'policy_violation'],
  ])('%s %o → %s', (raw, options, code) => {
    const r = parseAuthority(raw, options);
    expect(r.ok ? 'ok' : r.error.code).toBe(code);
  });
});

describe('matchHost', () => {
  it.each([
    ['api.openai.com', 'api.openai.com', true],
    ['api.openai.com', 'api.openai.com.evil.com', false],
    ['api.openai.com', 'api-openai.com', false],
    ['api.openai.com', 'apiopenai.com', false],
    ['api.openai.com', 'evil.api.openai.com', false],
    ['*.example.com', 'a.example.com', true],
    ['*.example.com', 'a.b.example.com', false],
    ['*.example.com', 'example.com', false],
    ['*.example.com', 'evil-example.com', false],
    ['*.example.com', 'example.com.evil.com', false],
    ['*.example.com', '.example.com', false],
    ['*.myshopify.com', 'my-store.myshopify.com', true],
    ['*.myshopify.com', 'my-store.myshopify.com:8443', false],
  ])('%s vs %s → %s', (pattern, host, expected) => {
    expect(matchHost(pattern, host)).toBe(expected);
  });

  it.each([
    ['api.openai.com', true],
    ['*.myshopify.com', true],
    ['*.com', false],
    ['*.*.example.com', false],
    ['a.*.example.com', false],
    ['API.openai.com', false],
    ['api.openai.com:8443', false],
  ])('isValidHostPattern(%s) → %s', (pattern, expected) => {
    expect(isValidHostPattern(pattern)).toBe(expected);
  });

  // The cases the registry's former matcher (core/registry/index.ts hostMatchesPattern, deleted) handled on its
  // own: production normalizes a caller's host first (parseAuthority), then matches canonical forms.
  it.each([
    ['*.myshopify.com', 'My-Store.MyShopify.com', true],
    ['*.myshopify.com', '-bad.myshopify.com', false],
    ['api.openai.com', 'API.OPENAI.COM', true],
    ['api.openai.com', 'x.api.openai.com', false],
  ])('normalized %s vs %s → %s', (pattern, raw, expected) => {
    const parsed = parseAuthority(raw);
    expect(parsed.ok && matchHost(pattern, parsed.value.host)).toBe(expected);
  });

  const label = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?$/);
  const host = fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => ls.join('.'));

  it('property: a wildcard matches only exactly one label + "." + suffix', () => {
    fc.assert(
      fc.property(host, host, (suffixBase, candidate) => {
        const suffix = `${suffixBase}.com`;
        const matched = matchHost(`*.${suffix}`, candidate);
        const expected =
          candidate.endsWith(`.${suffix}`) &&
          !candidate.slice(0, -(suffix.length + 1)).includes('.') &&
          candidate.length > suffix.length + 1;
        expect(matched).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });

  it('property: generated one-label hosts under the suffix always match', () => {
    fc.assert(
      fc.property(label, host, (first, base) => {
        expect(matchHost(`*.${base}.com`, `${first}.${base}.com`)).toBe(true);
        expect(matchHost(`*.${base}.com`, `${base}.com`)).toBe(false);
      }),
    );
  });
});

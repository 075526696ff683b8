import { createHash, createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { hmacCanonicalInput } from '../../../src/request-worker/auth/hmac.js';
import type { AuthSpec } from '../../../src/core/registry/types.js';
import { apply, codeOf, INPUT, must } from './helpers.js';

const NOW = 1_700_000_000_123; // → timestamp 1700000000
const env = { now: () => NOW };
const body = new TextEncoder().encode('{"event":"ping"}');
const input = { method: 'post', path: '/v1/messages', query: 'b=2&a=1&a=0&sp=x%20y+z', body };
const bodyHash = createHash('sha256').update(body).digest('hex');
const CANONICAL = `POST\n/v1/messages\na=0&a=1&b=2&sp=x%20y%2Bz\n1700000000\n${bodyHash}`;

const spec = (over: Partial<Record<string, string>> = {}): AuthSpec =>
  ({
    hmac: {
      algorithm: 'sha256',
      header_name: 'X-Signature',
      value_template: 't={{timestamp}},v1={{signature}}',
      ...over,
    },
  }) as AuthSpec;

describe('hmac', () => {
  it('builds the documented canonical input', () => {
    expect(must(hmacCanonicalInput({ ...INPUT, ...input }, '1700000000'))).toBe(CANONICAL);
  });

  it.each([
    ['sha256', 'hex'],
    ['sha512', 'hex'],
    ['sha1', 'base64'],
    ['sha256', 'base64'],
  ] as const)('signs with %s / %s', async (algorithm, encoding) => {
    const out = must(await apply(spec({ algorithm, encoding }), { secret: 'whsec_test' }, input, {}, env));
    const expected = createHmac(algorithm, 'whsec_test').update(CANONICAL).digest(encoding);
    expect(out.setHeaders).toEqual([['x-signature', `t=1700000000,v1=${expected}`]]);
  });

  it('pins a known answer (sha256 hex)', async () => {
    const out = must(
      await apply(spec({ value_template: '{{signature}}' }), { secret: 'sec' }, input, {}, env),
    );
    expect(out.setHeaders[0]?.[1]).toBe(createHmac('sha256', 'sec').update(CANONICAL).digest('hex'));
    expect(out.setHeaders[0]?.[1]).toMatch(/^[0-9a-f]{64}$/);
  });

  it('is deterministic and sensitive to every canonical field', async () => {
    const sign = async (over: object) =>
      must(
        await apply(
          spec({ value_template: '{{signature}}' }),
          { secret: 's' },
          { ...input, ...over },
          {},
          env,
        ),
      ).setHeaders[0]?.[1];
    const base = await sign({});
    expect(await sign({})).toBe(base);
    expect(await sign({ query: 'a=0&a=1&b=2&sp=x%20y+z' })).toBe(base); // order-independent
    for (const over of [
      { method: 'GET' },
      { path: '/v1/other' },
      { query: 'a=1' },
      { body: new Uint8Array([1]) },
    ]) {
      expect(await sign(over)).not.toBe(base);
    }
  });

  it('fails closed on a streamed body, a missing key, or a bad query escape', async () => {
    expect(codeOf(await apply(spec(), { secret: 's' }, { ...input, body: undefined }, {}, env))).toBe(
      'auth_failed',
    );
    expect(codeOf(await apply(spec(), {}, input, {}, env))).toBe('auth_failed');
    expect(codeOf(await apply(spec(), { secret: 's' }, { ...input, query: 'a=%G1' }, {}, env))).toBe(
      'auth_failed',
    );
  });

  it('takes a base64 key (Svix whsec_…, url-safe too) as the key bytes, not the text', async () => {
    const keyBytes = Buffer.from('0123456789abcdef0123456789abcdef\xff\xfe', 'latin1');
    const expected = createHmac('sha256', keyBytes).update(CANONICAL).digest('base64');
    for (const secret of [
      `whsec_${keyBytes.toString('base64')}`,
      keyBytes.toString('base64'),
      keyBytes.toString('base64url'),
    ]) {
      const out = must(
        await apply(
          spec({ value_template: '{{signature}}', encoding: 'base64', key_encoding: 'base64' }),
          { secret },
          input,
          {},
          env,
        ),
      );
      expect(out.setHeaders[0]?.[1]).toBe(expected);
    }
    for (const bad of ['whsec_', 'not base64!', 'abc=d', 'a']) {
      const res = await apply(spec({ key_encoding: 'base64' }), { secret: bad }, input, {}, env);
      expect(codeOf(res)).toBe('auth_failed');
      if (bad.length > 3) expect(JSON.stringify(res)).not.toContain(bad);
    }
    expect(codeOf(await apply(spec({ key_encoding: 'hex' }), { secret: 's' }, input))).toBe('auth_failed');
  });

  it('refuses unknown algorithms/encodings and secret placeholders in the header template', async () => {
    expect(codeOf(await apply(spec({ algorithm: 'md5' }), { secret: 's' }, input))).toBe('auth_failed');
    expect(codeOf(await apply(spec({ encoding: 'base32' }), { secret: 's' }, input))).toBe('auth_failed');
    expect(codeOf(await apply(spec({ value_template: '{{secret}}' }), { secret: 's' }, input))).toBe(
      'auth_failed',
    );
  });
});

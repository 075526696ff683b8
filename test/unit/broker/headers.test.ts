import { describe, expect, it } from 'vitest';
import {
  filterResponseHeaders,
  injectedHeaderNames,
  sanitizeRequestHeaders,
} from '../../../src/core/broker/headers.js';

const base = { injected: new Set<string>(), multipart: false };

describe('sanitizeRequestHeaders', () => {
  it.each([
    ['authorization', 'Bearer stolen'],
    ['Authorization', 'Bearer stolen'],
    ['proxy-authorization', 'Basic x'],
    ['x-api-key', 'k'],
    ['api-key', 'k'],
    ['x-goog-api-key', 'k'],
    ['cookie', 'session=1'],
    ['x-amz-security-token', 't'],
  ])('caller %s → policy_violation', (name, value) => {
    const r = sanitizeRequestHeaders([[name, value]], base);
    expect(r.ok ? 'ok' : r.error.code).toBe('policy_violation');
  });

  it('a header the credential injects is refused', () => {
    const r = sanitizeRequestHeaders([['X-Shopify-Access-Token', 'x']], {
      ...base,
      injected: injectedHeaderNames({
        header: { header_name: 'X-Shopify-Access-Token', value_template: '{{secret}}' },
      }),
    });
    expect(r.ok ? 'ok' : r.error.code).toBe('policy_violation');
  });

  it.each([
    ['x-evil\r\nhost', 'v'],
    ['bad name', 'v'],
    ['', 'v'],
    ['x-ok', 'a\r\nInjected: 1'],
    ['x-ok', 'a\nb'],
    ['x-ok', 'nul\u0000'],
  ])('invalid %j: %j → invalid_request', (name, value) => {
    const r = sanitizeRequestHeaders([[name, value]], base);
    expect(r.ok ? 'ok' : r.error.code).toBe('invalid_request');
  });

  it('strips reserved and hop-by-hop headers, keeps the rest lower-cased', () => {
    const r = sanitizeRequestHeaders(
      [
        ['Host', 'evil.com'],
        ['Connection', 'keep-alive, X-Drop-Me'],
        ['X-Drop-Me', '1'],
        ['Content-Length', '999'],
        ['Transfer-Encoding', 'chunked'],
        ['Sec-WebSocket-Key', 'abc'],
        ['X-Forwarded-For', '10.0.0.1'],
        ['Forwarded', 'for=1.2.3.4'],
        ['Proxy-Connection', 'x'],
        ['TE', 'trailers'],
        ['Upgrade', 'h2c'],
        ['Content-Type', 'application/json'],
        ['OpenAI-Beta', 'assistants=v2'],
      ],
      base,
    );
    expect(r.ok && r.value).toEqual([
      ['content-type', 'application/json'],
      ['openai-beta', 'assistants=v2'],
    ]);
  });

  it('drops the caller content-type for multipart bodies', () => {
    const r = sanitizeRequestHeaders([['Content-Type', 'multipart/form-data; boundary=evil']], {
      ...base,
      multipart: true,
    });
    expect(r.ok && r.value).toEqual([]);
  });
});

describe('filterResponseHeaders', () => {
  it('removes framing and auth-class headers', () => {
    const out = filterResponseHeaders([
      ['Set-Cookie', 'a=1'],
      ['set-cookie2', 'a=1'],
      ['WWW-Authenticate', 'Bearer realm=x'],
      ['Proxy-Authenticate', 'x'],
      ['Authorization', 'Bearer leaked'],
      ['X-Api-Key', 'leaked'],
      ['Connection', 'close, X-Hop'],
      ['X-Hop', '1'],
      ['Keep-Alive', 'timeout=5'],
      ['Transfer-Encoding', 'chunked'],
      ['Content-Length', '10'],
      ['Trailer', 'x'],
      ['Upgrade', 'x'],
      ['Content-Type', 'application/json'],
      ['X-Request-Id', 'req_1'],
    ]);
    expect(out).toEqual([
      ['content-type', 'application/json'],
      ['x-request-id', 'req_1'],
    ]);
  });
});

import { describe, expect, it } from 'vitest';
import { parseEnvelope } from '../../../src/core/broker/envelope.js';

const req = (request: Record<string, unknown>, top: Record<string, unknown> = {}) => ({
  capability: 'openai/chat-completions',
  request: { method: 'POST', path: '/v1/chat/completions', ...request },
  ...top,
});

describe('parseEnvelope', () => {
  it('accepts a minimal envelope and normalizes method case and header forms', () => {
    const r = parseEnvelope(
      req({ method: 'post', headers: { 'Content-Type': 'application/json' }, body: '{}' }),
    );
    expect(r.ok && r.value).toEqual({
      capability: 'openai/chat-completions',
      request: {
        method: 'POST',
        path: '/v1/chat/completions',
        headers: [['Content-Type', 'application/json']],
        body: '{}',
      },
    });
  });

  it('accepts raw bytes (a msgpack bin) as a body mode of its own; JSON-shaped values are refused', () => {
    const data = new Uint8Array([0, 0xff, 0x80, 10]);
    const r = parseEnvelope(req({ bodyBytes: data }));
    expect(r.ok && r.value.request.bodyBytes).toBe(data);
    const buf = parseEnvelope(req({ bodyBytes: Buffer.from('hi') }));
    expect(buf.ok).toBe(true);
    for (const bad of ['aGk=', [104, 105], { 0: 104 }, new ArrayBuffer(2)]) {
      expect(parseEnvelope(req({ bodyBytes: bad }))).toMatchObject({
        ok: false,
        error: { code: 'invalid_request', details: { field: 'request.bodyBytes' } },
      });
    }
    expect(parseEnvelope(req({ bodyBytes: data, body: 'x' }))).toMatchObject({
      ok: false,
      error: { code: 'invalid_request' },
    });
  });

  it('accepts multipart + multipartFiles as one body mode', () => {
    const r = parseEnvelope(
      req({
        multipart: [{ name: 'model', value: 'whisper-1' }],
        multipartFiles: [{ name: 'file', path: '/tmp/a.wav' }],
      }),
    );
    expect(r.ok).toBe(true);
  });

  it.each([
    ['not an object', 'x', 'invalid_request', undefined],
    ['array', [], 'invalid_request', undefined],
    ['unknown top-level field', req({}, { extra: 1 }), 'invalid_request', 'extra'],
    [
      '__proto__ key',
      JSON.parse('{"capability":"a","request":{"method":"GET","path":"/"},"__proto__":{"x":1}}'),
      'invalid_request',
      '__proto__',
    ],
    ['unknown request field', req({ timeout: 5 }), 'invalid_request', 'request.timeout'],
    ['request.url', req({ url: 'https://evil.com/x' }), 'policy_violation', 'request.url'],
    ['top-level url', req({}, { url: 'https://evil.com' }), 'policy_violation', 'url'],
    ['request.host', req({ host: 'evil.com' }), 'policy_violation', 'request.host'],
    ['targetUrl', req({}, { targetUrl: 'wss://evil.com' }), 'policy_violation', 'targetUrl'],
    ['absolute URL path', req({ path: 'https://evil.com/v1/chat' }), 'policy_violation', 'request.path'],
    ['protocol-relative path', req({ path: '//evil.com/v1/chat' }), 'policy_violation', 'request.path'],
    ['host in path', req({ path: 'evil.com/v1/chat' }), 'policy_violation', 'request.path'],
    ['scheme-only path', req({ path: 'file:/etc/passwd' }), 'policy_violation', 'request.path'],
    ['relative path', req({ path: 'v1/chat' }), 'invalid_request', 'request.path'],
    ['body + bodyBase64', req({ body: 'a', bodyBase64: 'YQ==' }), 'invalid_request', 'request'],
    ['body + multipart', req({ body: 'a', multipart: [] }), 'invalid_request', 'request'],
    [
      'bodyFilePath + multipartFiles',
      req({ bodyFilePath: '/x', multipartFiles: [] }),
      'invalid_request',
      'request',
    ],
    ['unknown method', req({ method: 'TRACE' }), 'invalid_request', 'request.method'],
    ['missing method', req({ method: undefined }), 'invalid_request', 'request.method'],
    ['non-string body', req({ body: { a: 1 } }), 'invalid_request', 'request.body'],
    ['bad base64', req({ bodyBase64: '***' }), 'invalid_request', 'request.bodyBase64'],
    ['header pair not strings', req({ headers: [['a', 1]] }), 'invalid_request', 'request.headers.0'],
    [
      'too many headers',
      req({ headers: Array.from({ length: 101 }, (_, i) => [`x-${i}`, 'v']) }),
      'invalid_request',
      'request.headers',
    ],
    ['path too long', req({ path: `/${'a'.repeat(9000)}` }), 'invalid_request', 'request.path'],
    ['empty capability', req({}, { capability: '' }), 'invalid_request', 'capability'],
    [
      'multipart file with both sources',
      req({ multipartFiles: [{ name: 'f', path: '/a', contentBase64: 'YQ==' }] }),
      'invalid_request',
      'request.multipartFiles.0',
    ],
    [
      'multipart filename with CRLF',
      req({ multipartFiles: [{ name: 'f', path: '/a', filename: 'a\r\nX: y' }] }),
      'invalid_request',
      'request.multipartFiles.0.filename',
    ],
    [
      'multipart file url field',
      req({ multipartFiles: [{ name: 'f', url: 'https://evil.com' }] }),
      'policy_violation',
      'request.multipartFiles.0.url',
    ],
  ])('%s → %s', (_name, input, code, field) => {
    const r = parseEnvelope(input);
    expect(r.ok ? 'ok' : r.error.code).toBe(code);
    if (!r.ok && field !== undefined) expect(r.error.details?.field).toBe(field);
  });
});

describe('parseEnvelope: ids follow the registry id grammar', () => {
  it.each(['openai/models\u001b[2J', 'a\nFAKE LINE', ' leading-space', 'x'.repeat(129), '-dash-first'])(
    'refuses %j without echoing it',
    (capability) => {
      const r = parseEnvelope({ capability, request: { method: 'GET', path: '/' } });
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.error.code).toBe('invalid_request');
        expect(r.error.message).not.toContain(capability);
      }
    },
  );
});

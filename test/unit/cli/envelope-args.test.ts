import { describe, expect, it } from 'vitest';
import { buildEnvelope, parseHeaderFlag } from '../../../src/cli/envelope-args.js';

const chat = { methods: ['POST'], pathPrefixes: ['/v1/chat/completions'] };
const repos = { methods: ['DELETE', 'GET', 'PATCH', 'POST'], pathPrefixes: ['/repos'] };

describe('buildEnvelope', () => {
  it('fills method and path from the capability', () => {
    expect(buildEnvelope('openai/chat-completions', { body: '{}' }, chat)).toEqual({
      capability: 'openai/chat-completions',
      request: { method: 'POST', path: '/v1/chat/completions', body: '{}' },
    });
  });

  it('never defaults to a destructive method when several are allowed', () => {
    expect(buildEnvelope('github/repos', {}, repos).request.method).toBe('GET');
  });

  it('parses headers in both k=v and "K: v" forms, lower-casing names', () => {
    expect(parseHeaderFlag('X-Custom: value')).toEqual(['x-custom', 'value']);
    expect(parseHeaderFlag('content-type=application/json')).toEqual(['content-type', 'application/json']);
  });

  it('builds multipart with absolute file paths', () => {
    const env = buildEnvelope(
      'openai/transcription',
      { multipartField: ['model=whisper-1'], multipartFile: ['file=audio.wav'] },
      { methods: ['POST'], pathPrefixes: ['/v1/audio/transcriptions'] },
    );
    expect(env.request.multipart).toEqual([{ name: 'model', value: 'whisper-1' }]);
    expect(env.request.multipartFiles?.[0]?.path).toMatch(/^\/.*audio\.wav$/);
  });

  it('accepts a whole envelope or a bare request in --request', () => {
    const bare = buildEnvelope('a/b', { request: '{"method":"GET","path":"/x"}' });
    expect(bare).toEqual({ capability: 'a/b', request: { method: 'GET', path: '/x' } });
    const whole = buildEnvelope('a/b', {
      request: '{"capability":"a/b","request":{"method":"GET","path":"/y"}}',
    });
    expect(whole.request.path).toBe('/y');
  });

  it.each([
    [{ body: 'x', bodyFilePath: '/tmp/f' }],
    [{ body: 'x', multipartField: ['a=b'] }],
    [{ request: '{', path: '/x' }],
    [{ request: '{"capability":"other/cap","request":{}}' }],
    [{ header: ['novalue'] }],
  ])('rejects %j with a usage error', (opts) => {
    expect(() => buildEnvelope('a/b', opts, chat)).toThrowError(expect.objectContaining({ code: 'usage' }));
  });
});

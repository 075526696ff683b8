import { describe, expect, it } from 'vitest';
import {
  applyResponseBlocklist,
  checkResponseSize,
  filterUpstreamHeaders,
  redactJsonValue,
} from '../../../src/request-worker/pipeline/sanitize.js';

describe('sanitize', () => {
  it('drops auth-class, hop-by-hop and framing headers', () => {
    const out = filterUpstreamHeaders({
      'set-cookie': ['a=1', 'b=2'],
      authorization: 'Bearer x',
      'www-authenticate': 'Basic',
      'proxy-authenticate': 'Basic',
      'x-api-key': 'k',
      connection: 'keep-alive, x-hop',
      'x-hop': '1',
      'transfer-encoding': 'chunked',
      'content-length': '10',
      'Content-Type': 'application/json',
      'x-request-id': 'r1',
    });
    expect(out).toEqual([
      ['content-type', 'application/json'],
      ['x-request-id', 'r1'],
    ]);
  });

  it('drops the credential injected header names too', () => {
    expect(filterUpstreamHeaders({ 'x-custom-auth': 'v', ok: '1' }, new Set(['x-custom-auth']))).toEqual([
      ['ok', '1'],
    ]);
  });

  it('redacts blocklisted JSON fields recursively', () => {
    expect(
      redactJsonValue({ a: 1, token: 'x', nested: [{ token: 'y', keep: 2 }] }, new Set(['token'])),
    ).toEqual({
      a: 1,
      token: '[redacted]',
      nested: [{ token: '[redacted]', keep: 2 }],
    });
    const body = new TextEncoder().encode(JSON.stringify({ secret: 's', ok: true }));
    const out = applyResponseBlocklist(body, ['secret'], [['content-type', 'application/json']]);
    expect(JSON.parse(new TextDecoder().decode(out.body))).toEqual({ secret: '[redacted]', ok: true });
  });

  it('withholds a non-JSON body when a blocklist is set', () => {
    expect(() => applyResponseBlocklist(new TextEncoder().encode('secret: s'), ['secret'], [])).toThrowError(
      /not JSON/,
    );
  });

  it('enforces max response size', () => {
    expect(() => checkResponseSize(11, 10)).toThrowError(expect.objectContaining({ code: 'body_too_large' }));
    expect(() => checkResponseSize(10, 10)).not.toThrow();
  });
});

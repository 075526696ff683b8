import { describe, expect, it } from 'vitest';
import { checkFraming, MAX_HEADER_BYTES, MAX_HEADER_LINES } from '../../../src/front/http-strict.js';

const h = (...pairs: [string, string][]): [string, string][] => [['host', 'x'], ...pairs];

describe('checkFraming', () => {
  it.each([
    ['one Content-Length', h(['content-length', '12']), undefined],
    ['chunked', h(['transfer-encoding', 'chunked']), undefined],
    ['Chunked (case-insensitive token)', h(['transfer-encoding', 'Chunked']), undefined],
    ['two Content-Length', h(['content-length', '2'], ['content-length', '5']), 400],
    ['the same Content-Length twice', h(['content-length', '2'], ['content-length', '2']), 400],
    ['Content-Length with a sign', h(['content-length', '+2']), 400],
    ['gzip, chunked', h(['transfer-encoding', 'gzip, chunked']), 501],
    ['two TE headers', h(['transfer-encoding', 'chunked'], ['transfer-encoding', 'chunked']), 501],
    ['identity', h(['transfer-encoding', 'identity']), 501],
    ['TE and CL', h(['transfer-encoding', 'chunked'], ['content-length', '3']), 400],
    [
      'too many lines',
      h(...Array.from({ length: MAX_HEADER_LINES }, (_, i): [string, string] => [`x-${i}`, 'v'])),
      431,
    ],
    ['too many bytes', h(['x-big', 'a'.repeat(MAX_HEADER_BYTES)]), 431],
  ] as const)('%s', (_name, headers, status) => {
    expect(checkFraming(headers)?.status).toBe(status);
  });
});

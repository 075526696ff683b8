// The error model is a public contract: every code is documented in the README, survives the wire, and
// unknown failures never leak their text.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { AivaultError, ERROR_CODES, ERRORS, fromWire, toWire } from '../../src/core/errors.js';

const readme = readFileSync('README.md', 'utf8');

describe('error codes', () => {
  it('the README error table is the code table of src/core/errors.ts: same codes, same order, same HTTP status', () => {
    const table = readme.slice(readme.indexOf('| Code | HTTP | Meaning |'));
    const rows = [...table.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])]);
    expect(rows).toEqual(ERROR_CODES.map((code) => [code, ERRORS[code].http]));
  });

  it('round-trips across the wire and is recognised by code, not class identity', () => {
    const err = new AivaultError('rate_limited', 'slow down', { retryAfterMs: 10 });
    const back = fromWire(JSON.parse(JSON.stringify(toWire(err))));
    expect(back).toBeInstanceOf(AivaultError);
    expect(back.code).toBe('rate_limited');
    expect(back.details).toEqual({ retryAfterMs: 10 });
  });

  it('turns foreign errors into `internal` without their message', () => {
    expect(toWire(new Error('/home/user/secret path'))).toEqual({
      error: 'internal',
      message: 'internal error',
    });
    expect(fromWire({ error: 'made_up', message: 'x' }).code).toBe('internal');
  });

  it('usage errors exit 2, everything else 1', () => {
    for (const code of ERROR_CODES) expect(ERRORS[code].exit).toBe(code === 'usage' ? 2 : 1);
  });
});

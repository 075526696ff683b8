// The pipeline's last line of defence: whatever layer wrote an error message, no credential value (plain,
// percent-encoded, or a field of a JSON secret) leaves invokeCapability.
import { describe, expect, it } from 'vitest';
import { AivaultError } from '../../../src/core/errors.js';
import { REDACTION_MARK } from '../../../src/request-worker/auth/index.js';
import { scrubError } from '../../../src/request-worker/pipeline/scrub-call.js';

describe('scrubError', () => {
  it('redacts slot values, JSON secret fields and URL-encoded forms in message and details', () => {
    const e = new AivaultError(
      'upstream_unreachable',
      'GET /bot123:abc/getMe?key=a%2Bb%2Fc failed: tok-XYZ',
      {
        url: 'https://h/x?key=a%2Bb%2Fc',
        status: 502,
      },
    );
    const out = scrubError(
      e,
      [{ secret: '123:abc' }, { oauth: JSON.stringify({ clientId: 'cid-1', accessToken: 'tok-XYZ' }) }],
      ['a%2Bb%2Fc'],
    );
    expect(out.code).toBe('upstream_unreachable');
    expect(out.message).not.toMatch(/123:abc|a%2Bb|a\+b\/c|tok-XYZ/);
    expect(out.message).toContain(REDACTION_MARK);
    expect(out.details?.url).toBe(`https://h/x?key=${REDACTION_MARK}`);
    expect(out.details?.status).toBe(502);
  });

  it('leaves clean errors (and very short values) alone', () => {
    const e = new AivaultError('policy_violation', 'method DELETE is not allowed');
    expect(scrubError(e, [{ secret: 'sk-long-secret' }, { secret: 'E' }], [])).toBe(e);
  });
});

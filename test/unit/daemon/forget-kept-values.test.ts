/**
 * After `aivault lock` a request worker drops, at once, every value it keeps beyond a call: no call comes
 * to notice the new generation, and the idle timers would take five minutes (src/request-worker/forget.ts).
 */
import { describe, expect, it, vi } from 'vitest';
import { Generation } from '../../../src/core/threads/generation.js';
import { forgetKeptValues } from '../../../src/request-worker/forget.js';
import { scrubberFor } from '../../../src/request-worker/pipeline/scrubber-cache.js';
import { SecretCache } from '../../../src/request-worker/secret-cache.js';
import { cleared, signOnce } from '../../support/sigv4-spy.js';

vi.mock('@smithy/signature-v4', async (original) =>
  (await import('../../support/sigv4-spy.js')).spiedSigner(() => original()),
);

describe('forgetKeptValues', () => {
  it('empties the secret cache, the matchers, the mTLS identities and the SigV4 keys, now', async () => {
    const generation = new Generation();
    const secrets = new SecretCache(generation);
    secrets.set('sec_1', 'sk-kept-0123456789abcdef', generation.current());
    expect(secrets.size).toBe(1);
    const matcher = scrubberFor([{ name: 'K', value: 'sk-kept-0123456789abcdef' }]);
    await signOnce();
    cleared.count = 0;
    const forgetClientIdentities = vi.fn();

    forgetKeptValues({ secretCache: secrets, forgetClientIdentities });

    expect(secrets.size).toBe(0);
    expect(scrubberFor([{ name: 'K', value: 'sk-kept-0123456789abcdef' }])).not.toBe(matcher);
    expect(forgetClientIdentities).toHaveBeenCalledOnce();
    expect(cleared.count).toBe(1);
  });
});

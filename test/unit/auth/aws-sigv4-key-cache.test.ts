/**
 * The SigV4 signer's derived signing keys (its own module-level cache) must not stay in a request worker
 * for the thread's life: they go SIGNING_KEY_IDLE_MS after the last signature (docs/security.md).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { cleared, signOnce } from '../../support/sigv4-spy.js';
import { SIGNING_KEY_IDLE_MS } from '../../../src/request-worker/auth/aws-sigv4.js';

vi.mock('@smithy/signature-v4', async (original) =>
  (await import('../../support/sigv4-spy.js')).spiedSigner(() => original()),
);

afterEach(() => vi.useRealTimers());

describe('aws_sigv4 derived signing keys', () => {
  it('are dropped five minutes after the last signature, and each signature pushes that back', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    cleared.count = 0;
    await signOnce();
    vi.advanceTimersByTime(SIGNING_KEY_IDLE_MS - 60_000);
    expect(cleared.count).toBe(0);
    await signOnce(); // in use: the five minutes start over
    vi.advanceTimersByTime(SIGNING_KEY_IDLE_MS - 60_000);
    expect(cleared.count).toBe(0);
    vi.advanceTimersByTime(60_000);
    expect(cleared.count).toBe(1);
    expect(vi.getTimerCount()).toBe(0); // nothing left armed on an idle worker
    await signOnce();
    vi.advanceTimersByTime(SIGNING_KEY_IDLE_MS);
    expect(cleared.count).toBe(2);
  });
});

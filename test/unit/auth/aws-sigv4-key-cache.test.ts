/**
 * The SigV4 signer's derived signing keys (its own module-level cache) must not stay in a request worker
 * for the thread's life: they go SIGNING_KEY_IDLE_MS after the last signature (docs/security.md).
 */
import type * as SignerPackage from '@smithy/signature-v4';
import { afterEach, describe, expect, it, vi } from 'vitest';

const cleared = vi.hoisted(() => ({ count: 0 }));
vi.mock('@smithy/signature-v4', async (original) => {
  const real = await original<typeof SignerPackage>();
  return {
    ...real,
    clearCredentialCache: () => {
      cleared.count++;
      real.clearCredentialCache();
    },
  };
});

const { signAwsRequest, SIGNING_KEY_IDLE_MS } = await import('../../../src/request-worker/auth/aws-sigv4.js');

const sign = async (): Promise<void> => {
  const result = await signAwsRequest(
    {
      method: 'GET',
      host: 'iam.amazonaws.com',
      path: '/',
      query: 'Action=ListUsers',
      headers: [],
      body: new Uint8Array(0),
    },
    { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
    { region: 'us-east-1', service: 'iam', date: new Date('2015-08-30T12:36:00Z'), applyChecksum: false },
  );
  expect(result.ok).toBe(true);
};

afterEach(() => vi.useRealTimers());

describe('aws_sigv4 derived signing keys', () => {
  it('are dropped five minutes after the last signature, and each signature pushes that back', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    cleared.count = 0;
    await sign();
    vi.advanceTimersByTime(SIGNING_KEY_IDLE_MS - 60_000);
    expect(cleared.count).toBe(0);
    await sign(); // in use: the five minutes start over
    vi.advanceTimersByTime(SIGNING_KEY_IDLE_MS - 60_000);
    expect(cleared.count).toBe(0);
    vi.advanceTimersByTime(60_000);
    expect(cleared.count).toBe(1);
    expect(vi.getTimerCount()).toBe(0); // nothing left armed on an idle worker
    await sign();
    vi.advanceTimersByTime(SIGNING_KEY_IDLE_MS);
    expect(cleared.count).toBe(2);
  });
});

/**
 * Watches the SigV4 signer's cache of derived signing keys being emptied. In a test file:
 *   vi.mock('@smithy/signature-v4', async (original) =>
 *     (await import('../../support/sigv4-spy.js')).spiedSigner(() => original()));
 * then `cleared.count` counts the package's clearCredentialCache calls.
 */
import type * as SignerPackage from '@smithy/signature-v4';

export const cleared = { count: 0 };

export async function spiedSigner(
  original: () => Promise<typeof SignerPackage>,
): Promise<typeof SignerPackage> {
  const real = await original();
  return {
    ...real,
    clearCredentialCache: () => {
      cleared.count++;
      real.clearCredentialCache();
    },
  };
}

/** One SigV4 signature (loads the signer; derives and caches a signing key). */
export async function signOnce(): Promise<void> {
  const { signAwsRequest } = await import('../../src/request-worker/auth/aws-sigv4.js');
  const result = await signAwsRequest(
    { method: 'GET', host: 'iam.amazonaws.com', path: '/', query: '', headers: [], body: new Uint8Array(0) },
    { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' },
    { region: 'us-east-1', service: 'iam', date: new Date('2015-08-30T12:36:00Z'), applyChecksum: false },
  );
  if (!result.ok) throw new Error(`sigv4 signature failed: ${result.error.message}`);
}

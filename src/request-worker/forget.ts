/**
 * Everything a request worker keeps beyond a call, dropped at once: after `aivault lock`, when no call will
 * come to notice the new vault generation and each cache would otherwise wait for its idle timer
 * (docs/security.md, "Decrypted-secret cache").
 */
import { forgetSigningKeys } from './auth/aws-sigv4.js';
import { dropScrubbers } from './pipeline/scrubber-cache.js';

export interface KeptValues {
  /** Decrypted secrets (src/request-worker/secret-cache.ts): zeroed and freed. */
  readonly secretCache: { clear(): void };
  /** mTLS identities' upstream pools (their TLS contexts hold private keys). */
  forgetClientIdentities(): void;
}

export function forgetKeptValues(kept: KeptValues): void {
  kept.secretCache.clear();
  dropScrubbers();
  kept.forgetClientIdentities();
  forgetSigningKeys();
}

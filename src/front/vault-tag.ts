import { createHash } from 'node:crypto';

/** Vault identity shown by /aivault/health so `aivault run` can tell its daemon from another one. */
export function vaultTag(vaultDir: string): string {
  return createHash('sha256').update(vaultDir).digest('hex').slice(0, 16);
}

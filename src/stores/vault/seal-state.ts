/**
 * The verified policy-seal state of an unlocked vault and sealed policy writes/reads (crypto worker and
 * in-process CLI: only code holding the KEK calls these).
 */
import { AivaultError } from '../../core/errors.js';
import { verifyCheck } from './aead.js';
import type { PolicyFile, PolicySealKey, PolicySealState } from './policy-seal.js';
import {
  EMPTY_POLICY,
  POLICY_FILES,
  UNSEALED,
  derivePolicySealKey,
  policyFilePath,
  readPolicyContents,
  sealDocument,
  verifyDocument,
} from './policy-seal.js';
import type { VaultPaths } from './paths.js';
import type { VaultMeta } from './records.js';
import type { Kek } from './secret-bytes.js';
import { readJsonFile, writeJsonAtomic } from './store.js';

/**
 * The policy-seal state of the vault `meta` describes, proven with `kek` (policy-seal.ts): only passphrase
 * vaults are sealed, and their flag must verify against the check record — a flag edited in vault.json
 * after the KEK was loaded is `storage_corrupt` here, not a silently unsealed vault.
 */
export function verifiedSealState(kek: Kek, meta: VaultMeta): PolicySealState {
  if (meta.provider.kind !== 'passphrase') return UNSEALED;
  if (kek.kekId !== meta.kekId) {
    throw new AivaultError(
      'vault_unavailable',
      'the master key was rotated by another process; unlock again',
    );
  }
  const sealed = meta.policySeal === true;
  if (!verifyCheck(kek, meta.vaultId, meta.provider.check, sealed)) {
    throw new AivaultError(
      'storage_corrupt',
      'vault.json: the policySeal flag does not match the passphrase check record (vault.json was edited)',
      { field: 'policySeal' },
    );
  }
  return sealed ? { sealed: true, ...derivePolicySealKey(kek, meta.vaultId) } : UNSEALED;
}

/**
 * Seal the three policy files under `keys` (their content as given; a missing file becomes an empty one:
 * a sealed vault always has all three). Used by init, reseal-policy and rotate-master, under the vault lock.
 */
export async function writeSealedPolicy(
  paths: VaultPaths,
  contents: ReadonlyMap<PolicyFile, object | undefined>,
  keys: readonly PolicySealKey[],
): Promise<void> {
  for (const file of POLICY_FILES) {
    const doc = contents.get(file) ?? EMPTY_POLICY[file]();
    await writeJsonAtomic(policyFilePath(paths.root, file), sealDocument(doc, file, keys));
  }
}

/** The policy files' content, verified under `key` when the vault is sealed (`storage_corrupt` otherwise). */
export async function verifiedPolicyContents(
  paths: VaultPaths,
  state: PolicySealState,
): Promise<Map<PolicyFile, object | undefined>> {
  if (!state.sealed) return readPolicyContents(paths.root);
  const out = new Map<PolicyFile, object | undefined>();
  for (const file of POLICY_FILES) {
    const path = policyFilePath(paths.root, file);
    out.set(file, verifyDocument(await readJsonFile(path), file, state, path));
  }
  return out;
}

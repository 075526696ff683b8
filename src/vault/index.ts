/** Public surface of the vault. `aead.ts` internals are exported for the daemon's crypto worker. */
export {
  Vault,
  readVaultMeta,
  loadKek,
  readSecretRecord,
  loadAllRecords,
  decryptRecord,
  valueRevision,
  toSecretInfo,
  toSecretMeta,
  newSecretId,
  INIT_LOCK_STALE_MS,
} from './vault.js';
export type {
  SecretMeta,
  SecretFilter,
  CreateSecretInput,
  InitOptions,
  OpenOptions,
  VaultStatus,
  RotateMasterResult,
  GroupRef,
} from './vault.js';
export { vaultPaths, secretRecordPath } from './paths.js';
export type { VaultPaths } from './paths.js';
export { SecretBytes, Kek, REDACTED } from './secret-bytes.js';
export type { SecretRecord, VaultMeta, ProviderKind, ProviderSection } from './records.js';
export { getProvider, providerKind } from './providers/index.js';
export type { KeyProvider, ProviderName } from './providers/provider.js';
export { deleteKeychainEntries, loadKeytar } from './providers/keychain.js';

/** Public surface of the vault. `aead.ts` internals are exported for the daemon's crypto worker. */
export { Vault, INIT_LOCK_STALE_MS } from './vault.js';
export {
  readVaultMeta,
  loadKek,
  readSecretRecord,
  loadAllRecords,
  decryptRecord,
  valueRevision,
} from './record-io.js';
export { toSecretInfo, toSecretMeta } from './secret-meta.js';
export type { SecretMeta, SecretFilter, GroupRef } from './secret-meta.js';
export { newSecretId } from './validate.js';
export type {
  CreateSecretInput,
  InitOptions,
  OpenOptions,
  VaultStatus,
  RotateMasterResult,
} from './vault.js';
export { vaultPaths, secretRecordPath } from './paths.js';
export type { VaultPaths } from './paths.js';
export { SecretBytes, Kek, REDACTED } from './secret-bytes.js';
export type { SecretRecord, VaultMeta, ProviderKind, ProviderSection } from './records.js';
export { getProvider, providerKind } from './providers/index.js';
export type { KeyProvider, ProviderName } from './providers/provider.js';
export { deleteKeychainEntries, loadKeytar } from './providers/keychain.js';

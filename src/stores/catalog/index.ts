/** Public surface of the catalog (store files ↔ BrokerSnapshot) and the pure provisioning planner. */
export {
  catalogPaths,
  readBrokerFile,
  readCapabilitiesFile,
  writeBrokerFile,
  type CatalogFiles,
  type CatalogPaths,
} from './files.js';
export { buildSnapshot, deriveCredential, loadCatalog, type LoadOptions } from './snapshot.js';
export { prepareCredential, type CreateCredentialInput, type MutationOptions } from './input.js';
export {
  createCredential,
  deleteCredential,
  patchCredential,
  type CredentialPatch,
  type DeleteCredentialResult,
} from './credentials.js';
export {
  addProvisionedCredential,
  removeSecretReferences,
  type SecretDeletionResult,
} from './provisioning-writes.js';
export {
  createCapability,
  deleteCapability,
  patchCapabilityAllow,
  setPolicy,
  type CapabilityAllowPatch,
  type CreateCapabilityInput,
  type SetPolicyInput,
} from './capabilities.js';
export { bind, listBindings, unbind, type BindInput, type BindingFilter } from './bindings.js';
export * from './provisioning.js';
export {
  dotPath,
  type BrokerFile,
  type CapabilitiesFile,
  type StoredCapability,
  type StoredCredential,
} from './schema.js';

/** Public surface of the catalog (store files ↔ BrokerSnapshot) and the pure provisioning planner. */
export * from './catalog.js';
export * from './provisioning.js';
export {
  dotPath,
  type BrokerFile,
  type CapabilitiesFile,
  type StoredCapability,
  type StoredCredential,
} from './schema.js';

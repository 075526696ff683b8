/**
 * The catalog's two store files (pure-ish I/O, any thread or the CLI): where broker.json and
 * capabilities.json live, reading and validating them (policy seal verified when the vault is sealed), and
 * the read-modify-write under the vault lock every mutation goes through, so concurrent CLI processes and
 * the daemon never lose each other's writes.
 */
import { join } from 'node:path';
import { withVaultLock } from '../vault/store.js';
import { readPolicyFile, writePolicyFile } from '../vault/policy-seal.js';
import {
  brokerFileSchema,
  capabilitiesFileSchema,
  emptyBrokerFile,
  emptyCapabilitiesFile,
  parseStoreFile,
  type BrokerFile,
  type CapabilitiesFile,
} from './schema.js';

export interface CatalogFiles {
  readonly brokerJson: string;
  readonly capabilitiesJson: string;
}
export interface CatalogPaths extends CatalogFiles {
  /** Vault root: the lock lives here. */
  readonly root: string;
}

export function catalogPaths(root: string): CatalogPaths {
  return { root, brokerJson: join(root, 'broker.json'), capabilitiesJson: join(root, 'capabilities.json') };
}

/** broker.json, its policy seal verified when the vault is sealed (stores/vault/policy-seal.ts). */
export async function readBrokerFile(path: string): Promise<BrokerFile> {
  const raw = await readPolicyFile(path, 'broker');
  return raw === undefined ? emptyBrokerFile() : parseStoreFile(brokerFileSchema, raw, path);
}

/** Validate and write broker.json (sealed when the vault is). Call under the vault lock. */
export async function writeBrokerFile(path: string, doc: BrokerFile): Promise<void> {
  // Re-validate what we are about to write: a bug here must not persist an invalid file.
  await writePolicyFile(path, 'broker', parseStoreFile(brokerFileSchema, doc, path));
}

export async function readCapabilitiesFile(path: string): Promise<CapabilitiesFile> {
  const raw = await readPolicyFile(path, 'capabilities');
  return raw === undefined ? emptyCapabilitiesFile() : parseStoreFile(capabilitiesFileSchema, raw, path);
}

/** One read-modify-write of broker.json under the vault lock: every broker.json mutation goes through here. */
export async function mutateBroker<T>(paths: CatalogPaths, fn: (doc: BrokerFile) => T): Promise<T> {
  return withVaultLock(paths.root, async () => {
    const doc = await readBrokerFile(paths.brokerJson);
    const result = fn(doc);
    await writeBrokerFile(paths.brokerJson, doc);
    return result;
  });
}

/** One read-modify-write of capabilities.json under the vault lock (bindings). */
export async function mutateBindings<T>(paths: CatalogPaths, fn: (doc: CapabilitiesFile) => T): Promise<T> {
  return withVaultLock(paths.root, async () => {
    const doc = await readCapabilitiesFile(paths.capabilitiesJson);
    const result = fn(doc);
    await writePolicyFile(
      paths.capabilitiesJson,
      'capabilities',
      parseStoreFile(capabilitiesFileSchema, doc, paths.capabilitiesJson),
    );
    return result;
  });
}

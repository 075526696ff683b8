/**
 * Applying provisioning decisions to the catalog (CLI secrets commands and the operator API): add an
 * auto-provisioned credential, and drop what referenced a deleted secret. The decisions themselves are
 * pure (provisioning.ts); these are the writes, under the vault lock.
 */
import { secretIdFromRef } from '../../core/broker/resolve-credential.js';
import type { Credential } from '../../core/broker/types.js';
import { withVaultLock } from '../vault/store.js';
import { writePolicyFile } from '../vault/policy-seal.js';
import {
  mutateBroker,
  readBrokerFile,
  readCapabilitiesFile,
  writeBrokerFile,
  type CatalogPaths,
} from './files.js';
import { planSecretDeletion } from './provisioning.js';

/**
 * Add an auto-provisioned credential (from planProvisioning). Under the lock the id is re-checked:
 * if another writer took it meanwhile, a `-2`, `-3`… suffix is used. Returns the stored id.
 */
export async function addProvisionedCredential(paths: CatalogPaths, credential: Credential): Promise<string> {
  return mutateBroker(paths, (doc) => {
    const taken = new Set(doc.credentials.map((c) => c.id));
    let id = credential.id;
    for (let n = 2; taken.has(id); n++) id = `${credential.id}-${n}`;
    doc.credentials.push({
      id,
      provider: credential.provider,
      source: 'registry',
      secretRefs: { ...credential.secretRefs },
      createdAtMs: credential.createdAtMs,
      ...(credential.alternative !== undefined ? { alternative: credential.alternative } : {}),
    });
    return id;
  });
}

export interface SecretDeletionResult {
  readonly removedCredentials: readonly string[];
  readonly removedCapabilities: readonly string[];
  readonly removedBindings: number;
}

/** After a secret is deleted: drop credentials that reference it, their custom capabilities, and bindings. */
export async function removeSecretReferences(
  paths: CatalogPaths,
  secretId: string,
): Promise<SecretDeletionResult> {
  return withVaultLock(paths.root, async () => {
    const doc = await readBrokerFile(paths.brokerJson);
    const asCredentials = doc.credentials.map((c) => ({
      id: c.id,
      secretRefs: Object.fromEntries(Object.entries(c.secretRefs).map(([k, v]) => [k, secretIdFromRef(v)])),
    }));
    const removedCredentials = planSecretDeletion(asCredentials, secretId);
    doc.credentials = doc.credentials.filter((c) => !removedCredentials.includes(c.id));
    const removedCapabilities = doc.capabilities
      .filter((c) => removedCredentials.includes(c.credentialId))
      .map((c) => c.id);
    doc.capabilities = doc.capabilities.filter((c) => !removedCapabilities.includes(c.id));
    doc.policies = doc.policies.filter((p) => !removedCapabilities.includes(p.capabilityId));
    const bindings = await readCapabilitiesFile(paths.capabilitiesJson);
    const keep = bindings.bindings.filter((b) => secretIdFromRef(b.secretRef) !== secretId);
    const removedBindings = bindings.bindings.length - keep.length;
    await writeBrokerFile(paths.brokerJson, doc);
    if (removedBindings > 0) {
      await writePolicyFile(paths.capabilitiesJson, 'capabilities', { ...bindings, bindings: keep });
    }
    return { removedCredentials, removedCapabilities, removedBindings };
  });
}

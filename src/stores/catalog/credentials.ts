/**
 * Credential mutations (any thread or the CLI that writes the catalog): create, PATCH and delete, each one
 * read-modify-write of broker.json under the vault lock (files.ts), validated like a create (input.ts).
 */
import { AivaultError } from '../../core/errors.js';
import type { Credential } from '../../core/broker/types.js';
import type { AuthSpec, RegistryIndex } from '../../core/registry/types.js';
import { mutateBroker, type CatalogPaths } from './files.js';
import { prepareCredential, type CreateCredentialInput, type MutationOptions } from './input.js';
import { deriveCredential } from './snapshot.js';

export async function createCredential(
  paths: CatalogPaths,
  registry: RegistryIndex,
  input: CreateCredentialInput,
  options: MutationOptions = {},
): Promise<Credential> {
  const stored = prepareCredential(input, registry, options);
  await mutateBroker(paths, (doc) => {
    if (doc.credentials.some((c) => c.id === stored.id)) {
      throw new AivaultError('conflict', `credential ${stored.id} already exists`);
    }
    doc.credentials.push(stored);
  });
  const derived = deriveCredential(stored, registry, () => undefined);
  if (!derived) throw new AivaultError('internal', 'created credential failed re-derivation');
  return derived;
}

export interface DeleteCredentialResult {
  /** Custom capabilities removed with the credential (only with `cascade`). */
  readonly removedCapabilities: readonly string[];
  /** Custom capabilities kept although their credential is gone (invoking them is credential_not_found). */
  readonly orphanedCapabilities: readonly string[];
}

/**
 * Delete a credential. The user's custom capabilities on it are kept (a capability is the user's policy
 * work, and recreating the credential under the same id makes them usable again); with `cascade` they are
 * removed too, with their policies, and listed.
 */
export async function deleteCredential(
  paths: CatalogPaths,
  id: string,
  options: { readonly cascade?: boolean } = {},
): Promise<DeleteCredentialResult> {
  return mutateBroker(paths, (doc) => {
    const before = doc.credentials.length;
    doc.credentials = doc.credentials.filter((c) => c.id !== id);
    if (doc.credentials.length === before)
      throw new AivaultError('credential_not_found', `credential ${id} does not exist`);
    const dependent = doc.capabilities.filter((c) => c.credentialId === id).map((c) => c.id);
    if (options.cascade !== true) return { removedCapabilities: [], orphanedCapabilities: dependent };
    doc.capabilities = doc.capabilities.filter((c) => c.credentialId !== id);
    doc.policies = doc.policies.filter((p) => !dependent.includes(p.capabilityId));
    return { removedCapabilities: dependent, orphanedCapabilities: [] };
  });
}

/** PATCH of a credential: the fields given replace the stored ones; the others are kept. */
export interface CredentialPatch {
  readonly secretRef?: string;
  readonly secretRefs?: Readonly<Record<string, string>>;
  readonly auth?: AuthSpec;
  readonly hosts?: readonly string[];
  readonly params?: Readonly<Record<string, string>>;
}

/**
 * Update a credential in place (the operator API's PATCH). The merged record is validated exactly like a
 * create (prepareCredential), under the same lock as the read, so a concurrent writer is never lost. The
 * provider, creation time and context binding are kept: dropping the binding would widen who it serves.
 */
export async function patchCredential(
  paths: CatalogPaths,
  registry: RegistryIndex,
  id: string,
  patch: CredentialPatch,
  options: MutationOptions = {},
): Promise<void> {
  await mutateBroker(paths, (doc) => {
    const i = doc.credentials.findIndex((c) => c.id === id);
    const stored = doc.credentials[i];
    if (!stored) throw new AivaultError('credential_not_found', `credential ${id} does not exist`);
    const auth = patch.auth ?? stored.auth;
    const hosts = patch.hosts ?? stored.hosts;
    const params = patch.params ?? stored.params;
    const merged: CreateCredentialInput = {
      id,
      provider: stored.provider,
      ...(patch.secretRef === undefined && patch.secretRefs === undefined
        ? { secretRefs: stored.secretRefs }
        : {}),
      ...(patch.secretRef !== undefined ? { secretRef: patch.secretRef } : {}),
      ...(patch.secretRefs !== undefined ? { secretRefs: patch.secretRefs } : {}),
      ...(auth ? { auth } : {}),
      ...(hosts ? { hosts } : {}),
      ...(params ? { params } : {}),
      ...(stored.workspaceId !== undefined ? { workspaceId: stored.workspaceId } : {}),
      ...(stored.groupId !== undefined ? { groupId: stored.groupId } : {}),
    };
    doc.credentials[i] = prepareCredential(merged, registry, { ...options, nowMs: stored.createdAtMs });
  });
}

/**
 * Custom capability and policy mutations (any thread or the CLI that writes the catalog): create, PATCH of
 * the allow rule, delete, and setPolicy's merge. Registry capabilities are read-only here except their
 * policy. Each is one read-modify-write of broker.json under the vault lock (files.ts).
 */
import { AivaultError } from '../../core/errors.js';
import { isWildcardPattern, matchHost } from '../../core/broker/hosts.js';
import type { Capability, CapabilityPolicy } from '../../core/broker/types.js';
import type { RegistryIndex } from '../../core/registry/types.js';
import { mutateBroker, type CatalogPaths } from './files.js';
import {
  checkId,
  checkMethods,
  checkPrefixes,
  normalizeHostInput,
  usage,
  type MutationOptions,
} from './input.js';
import { policySchema, type StoredCapability } from './schema.js';
import { validate } from '../../core/validate.js';
import { deriveCredential } from './snapshot.js';

export interface CreateCapabilityInput {
  readonly id: string;
  readonly credentialId: string;
  readonly methods: readonly string[];
  readonly pathPrefixes: readonly string[];
  /** Defaults to the credential's single concrete host. */
  readonly host?: string;
}

export async function createCapability(
  paths: CatalogPaths,
  registry: RegistryIndex,
  input: CreateCapabilityInput,
  options: MutationOptions = {},
): Promise<Capability> {
  checkId(input.id, 'capability id');
  if (registry.getCapability(input.id)) {
    throw new AivaultError('conflict', `capability ${input.id} is a registry capability id`);
  }
  const methods = checkMethods(input.methods);
  const prefixes = checkPrefixes(input.pathPrefixes);
  return mutateBroker(paths, (doc) => {
    if (doc.capabilities.some((c) => c.id === input.id)) {
      throw new AivaultError('conflict', `capability ${input.id} already exists`);
    }
    const stored = doc.credentials.find((c) => c.id === input.credentialId);
    if (!stored)
      throw new AivaultError('credential_not_found', `credential ${input.credentialId} does not exist`);
    const credential = deriveCredential(stored, registry, () => undefined);
    if (!credential)
      throw new AivaultError('storage_corrupt', `credential ${input.credentialId} is not usable`);
    let host: string;
    if (input.host !== undefined) {
      host = normalizeHostInput(input.host, options);
      const allowed = credential.hosts.some((h) =>
        isWildcardPattern(h) ? !isWildcardPattern(host) && matchHost(h, host) : h === host,
      );
      if (!allowed) {
        throw new AivaultError(
          'policy_violation',
          `host ${host} is not one of credential ${credential.id}'s hosts`,
        );
      }
    } else {
      const concrete = credential.hosts.filter((h) => !isWildcardPattern(h));
      if (concrete.length !== 1) throw usage('the credential has several hosts: pass --host');
      host = concrete[0] as string;
    }
    const record: StoredCapability = {
      id: input.id,
      provider: credential.provider,
      credentialId: credential.id,
      allow: { hosts: [host], methods, pathPrefixes: prefixes },
      createdAtMs: options.nowMs ?? Date.now(),
    };
    doc.capabilities.push(record);
    return {
      id: record.id,
      provider: record.provider,
      credentialId: record.credentialId,
      allow: record.allow,
      source: 'custom' as const,
    };
  });
}

/** PATCH of a custom capability's allow rule: the lists given replace the stored ones. */
export interface CapabilityAllowPatch {
  readonly methods?: readonly string[];
  readonly pathPrefixes?: readonly string[];
}

/**
 * Change a custom capability's methods and/or path prefixes (the operator API's PATCH). A registry
 * capability's rule is the registry's: only its policy (setPolicy) can change.
 */
export async function patchCapabilityAllow(
  paths: CatalogPaths,
  registry: RegistryIndex,
  id: string,
  patch: CapabilityAllowPatch,
): Promise<void> {
  if (patch.methods === undefined && patch.pathPrefixes === undefined) return;
  if (registry.getCapability(id)) {
    throw new AivaultError('policy_violation', `capability ${id} is built in: only its policy can change`);
  }
  const methods = patch.methods !== undefined ? checkMethods(patch.methods) : undefined;
  const prefixes = patch.pathPrefixes !== undefined ? checkPrefixes(patch.pathPrefixes) : undefined;
  await mutateBroker(paths, (doc) => {
    const c = doc.capabilities.find((x) => x.id === id);
    if (!c) throw new AivaultError('capability_not_found', `capability ${id} does not exist`);
    c.allow = {
      ...c.allow,
      ...(methods ? { methods } : {}),
      ...(prefixes ? { pathPrefixes: prefixes } : {}),
    };
  });
}

export async function deleteCapability(
  paths: CatalogPaths,
  registry: RegistryIndex,
  id: string,
): Promise<void> {
  if (registry.getCapability(id)) throw usage(`capability ${id} is built in and cannot be deleted`);
  await mutateBroker(paths, (doc) => {
    const before = doc.capabilities.length;
    doc.capabilities = doc.capabilities.filter((c) => c.id !== id);
    if (doc.capabilities.length === before)
      throw new AivaultError('capability_not_found', `capability ${id} does not exist`);
    doc.policies = doc.policies.filter((p) => p.capabilityId !== id);
  });
}

export interface SetPolicyInput {
  readonly capabilityId: string;
  readonly rateLimitPerMinute?: number;
  readonly maxRequestBodyBytes?: number;
  readonly maxResponseBodyBytes?: number;
  readonly responseBlocklist?: readonly string[];
  /** `off` removes the approval requirement. */
  readonly approval?: 'once' | 'always' | 'off';
}

/** Merge the given fields into the capability's policy (fields not given are kept). */
export async function setPolicy(
  paths: CatalogPaths,
  registry: RegistryIndex,
  input: SetPolicyInput,
): Promise<CapabilityPolicy> {
  const { approval, ...rest } = input;
  const approvalOff = approval === 'off';
  const checked = validate(policySchema, approvalOff ? rest : input);
  if (!checked.ok) {
    const fields = checked.issues.map((i) => i.path.join('.') || '(input)').join(', ');
    throw usage(
      `invalid policy (${fields}): limits must be positive integers, blocklist entries non-empty, approval once|always|off`,
    );
  }
  return mutateBroker(paths, (doc) => {
    const known =
      registry.getCapability(input.capabilityId) !== undefined ||
      doc.capabilities.some((c) => c.id === input.capabilityId);
    if (!known)
      throw new AivaultError('capability_not_found', `capability ${input.capabilityId} does not exist`);
    const index = doc.policies.findIndex((p) => p.capabilityId === input.capabilityId);
    const merged = { ...(index === -1 ? {} : doc.policies[index]), ...checked.value };
    if (approvalOff) delete merged.approval;
    if (index === -1) doc.policies.push(merged);
    else doc.policies[index] = merged;
    return merged;
  });
}

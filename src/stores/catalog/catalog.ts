/**
 * The imperative shell around broker.json and capabilities.json: read + validate, re-derive
 * registry-backed records from the compiled registry, build the BrokerSnapshot the pure broker reads,
 * and apply mutations as read-modify-write under the vault lock. The only broker-side code with I/O.
 */
import { join } from 'node:path';
import { AivaultError } from '../../core/errors.js';
import { isWildcardPattern, matchHost, parseHostPattern } from '../../core/broker/hosts.js';
import { publicSuffixWildcard } from '../../core/broker/public-suffix.js';
import { normalizePath } from '../../core/broker/path.js';
import { secretIdFromRef } from '../../core/broker/resolve-credential.js';
import { isAwsRegion, regionalHosts, regionOverride } from '../../core/broker/aws-region.js';
import { capabilityFromRegistry } from '../../core/broker/resolve-capability.js';
import type {
  Binding,
  BrokerSnapshot,
  Capability,
  CapabilityPolicy,
  Credential,
  Scope,
  SecretInfo,
} from '../../core/broker/types.js';
import {
  HTTP_METHODS,
  type AuthSpec,
  type HttpMethod,
  type RegistryIndex,
  type RegistryProvider,
} from '../../core/registry/types.js';
import { withVaultLock } from '../vault/store.js';
import { readPolicyFile, writePolicyFile } from '../vault/policy-seal.js';
import { planSecretDeletion } from './provisioning.js';
import {
  authSpecSchema,
  bindingSchema,
  brokerFileSchema,
  capabilitiesFileSchema,
  emptyBrokerFile,
  emptyCapabilitiesFile,
  ID_PATTERN,
  parseStoreFile,
  policySchema,
  type BrokerFile,
  type CapabilitiesFile,
  type StoredCapability,
  type StoredCredential,
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

export interface LoadOptions {
  /** Records dropped during re-derivation (tampered or stale). Messages name ids and fields, never values. */
  readonly onWarning?: (message: string) => void;
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

function registryPlaceholders(provider: RegistryProvider): Set<string> {
  return new Set(Object.values(provider.vaultSecrets));
}

/**
 * Hosts of a registry-backed credential, from the registry. Concrete registry hosts are used as is;
 * a wildcard registry host is replaced by the stored per-tenant hosts that match it. Any stored host
 * that matches no registry pattern is dropped (reported), so a disk edit cannot redirect a credential.
 */
function deriveRegistryHosts(
  provider: RegistryProvider,
  stored: readonly string[] | undefined,
  warn: (m: string) => void,
  credentialId: string,
): string[] {
  const out: string[] = [];
  const used = new Set<string>();
  for (const pattern of provider.hosts) {
    if (!isWildcardPattern(pattern)) {
      out.push(pattern);
      continue;
    }
    let bound = false;
    for (const host of stored ?? []) {
      if (!isWildcardPattern(host) && matchHost(pattern, host)) {
        out.push(host);
        used.add(host);
        bound = true;
      }
    }
    if (!bound) out.push(pattern);
  }
  for (const host of stored ?? []) {
    if (!used.has(host) && !provider.hosts.includes(host)) {
      warn(
        `credential ${credentialId}: host entry ignored (not allowed by the ${provider.provider} registry hosts)`,
      );
    }
  }
  return [...new Set(out)];
}

function hostsWithinProvider(hosts: readonly string[], provider: RegistryProvider): boolean {
  return hosts.every((h) =>
    provider.hosts.some((p) => p === h || (!isWildcardPattern(h) && matchHost(p, h))),
  );
}

/**
 * The registry provider as a credential with these params sees it: hosts relabelled for an AWS region
 * override; the provider itself without one; undefined when params.region is set but is not a region of
 * an AWS (sigv4) provider.
 */
function regionalProvider(
  provider: RegistryProvider,
  params: Readonly<Record<string, string>> | undefined,
): RegistryProvider | undefined {
  if (params?.region === undefined) return provider;
  if (!('aws_sigv4' in provider.auth) || !isAwsRegion(params.region)) return undefined;
  const override = regionOverride({ auth: provider.auth, params });
  return override ? { ...provider, hosts: [...regionalHosts(provider.hosts, override)] } : provider;
}

/**
 * A registry credential alternative: auth, hosts, capabilities, priority and path prefix all from the
 * compiled registry; the stored record only names the alternative and its secrets.
 */
function deriveAlternative(
  stored: StoredCredential,
  provider: RegistryProvider,
  base: Omit<Credential, 'auth' | 'hosts' | 'source'>,
  secretRefs: Readonly<Record<string, string>>,
  warn: (m: string) => void,
): Credential | undefined {
  const alt = provider.credentialAlternatives?.find((a) => a.id === stored.alternative);
  if (!alt) {
    warn(
      `credential ${stored.id}: ${provider.provider} has no credential alternative ${stored.alternative}; ignored`,
    );
    return undefined;
  }
  const placeholders = new Set(Object.values(alt.vaultSecrets));
  const keys = Object.keys(secretRefs);
  if (keys.length !== placeholders.size || !keys.every((k) => placeholders.has(k))) {
    warn(
      `credential ${stored.id}: secretRefs do not match the ${provider.provider} ${alt.id} slots; ignored`,
    );
    return undefined;
  }
  return {
    ...base,
    auth: alt.auth,
    hosts: deriveRegistryHosts({ ...provider, hosts: alt.hosts }, stored.hosts, warn, stored.id),
    source: 'registry',
    alternative: alt.id,
    capabilities: alt.capabilities,
    priority: alt.priority ?? 0,
    ...(alt.upstreamPathPrefix !== undefined ? { upstreamPathPrefix: alt.upstreamPathPrefix } : {}),
  };
}

/** Stored record → runtime Credential, or undefined when it must be dropped (fail closed). */
export function deriveCredential(
  stored: StoredCredential,
  registry: RegistryIndex,
  warn: (m: string) => void,
): Credential | undefined {
  const provider = registry.getProvider(stored.provider);
  const secretRefs: Record<string, string> = {};
  for (const [k, v] of Object.entries(stored.secretRefs)) secretRefs[k] = secretIdFromRef(v);
  const base = {
    id: stored.id,
    provider: stored.provider,
    secretRefs,
    createdAtMs: stored.createdAtMs,
    ...(stored.params ? { params: stored.params } : {}),
    ...(stored.workspaceId !== undefined ? { workspaceId: stored.workspaceId } : {}),
    ...(stored.groupId !== undefined ? { groupId: stored.groupId } : {}),
  };
  if (stored.source === 'registry') {
    if (!provider) {
      warn(`credential ${stored.id}: provider ${stored.provider} is not in the registry; ignored`);
      return undefined;
    }
    if (stored.alternative !== undefined) return deriveAlternative(stored, provider, base, secretRefs, warn);
    const placeholders = registryPlaceholders(provider);
    const keys = Object.keys(secretRefs);
    if (keys.length !== placeholders.size || !keys.every((k) => placeholders.has(k))) {
      warn(
        `credential ${stored.id}: secretRefs do not match the ${provider.provider} registry slots; ignored`,
      );
      return undefined;
    }
    // auth and hosts come from the compiled registry, never from disk; an AWS region override only
    // relabels the registry's own hosts (aws-region.ts), and anything else in params.region drops it.
    const regional = regionalProvider(provider, stored.params);
    if (!regional) {
      warn(`credential ${stored.id}: params.region is not a region of an AWS provider; ignored`);
      return undefined;
    }
    return {
      ...base,
      auth: provider.auth,
      hosts: deriveRegistryHosts(regional, stored.hosts, warn, stored.id),
      source: 'registry',
    };
  }
  if (!stored.auth || !stored.hosts || stored.hosts.length === 0) {
    warn(`credential ${stored.id}: custom credential without auth and hosts; ignored`);
    return undefined;
  }
  if (provider && !hostsWithinProvider(stored.hosts, provider)) {
    warn(
      `credential ${stored.id}: uses registry provider name ${provider.provider} with other hosts; ignored`,
    );
    return undefined;
  }
  return { ...base, auth: stored.auth as AuthSpec, hosts: stored.hosts, source: 'custom' };
}

function deriveCapability(
  stored: StoredCapability,
  registry: RegistryIndex,
  credentials: ReadonlyMap<string, Credential>,
  warn: (m: string) => void,
): Capability | undefined {
  if (registry.getCapability(stored.id)) {
    warn(`capability ${stored.id}: shadows a registry capability; ignored`);
    return undefined;
  }
  const credential = credentials.get(stored.credentialId);
  if (credential && credential.provider !== stored.provider) {
    warn(`capability ${stored.id}: provider differs from its credential; ignored`);
    return undefined;
  }
  return {
    id: stored.id,
    provider: stored.provider,
    credentialId: stored.credentialId,
    allow: {
      hosts: stored.allow.hosts,
      methods: stored.allow.methods,
      pathPrefixes: stored.allow.pathPrefixes,
    },
    source: 'custom',
  };
}

/** Pure: validated files + registry + secrets → the snapshot checkRequest reads. */
export function buildSnapshot(
  broker: BrokerFile,
  capabilities: CapabilitiesFile,
  registry: RegistryIndex,
  secrets: readonly SecretInfo[],
  options: LoadOptions = {},
): BrokerSnapshot {
  const warn = options.onWarning ?? (() => undefined);
  const credentials = new Map<string, Credential>();
  for (const stored of broker.credentials) {
    const credential = deriveCredential(stored, registry, warn);
    if (credential) credentials.set(credential.id, Object.freeze(credential));
  }
  const caps = new Map<string, Capability>();
  for (const provider of registry.providers) {
    for (const entry of provider.capabilities) caps.set(entry.id, capabilityFromRegistry(entry));
  }
  for (const stored of broker.capabilities) {
    const capability = deriveCapability(stored, registry, credentials, warn);
    if (capability) caps.set(capability.id, Object.freeze(capability));
  }
  const policies = new Map<string, CapabilityPolicy>();
  for (const p of broker.policies) policies.set(p.capabilityId, Object.freeze(p));
  return Object.freeze({
    credentials,
    capabilities: caps,
    policies,
    bindings: Object.freeze(capabilities.bindings.map((b) => Object.freeze(b as Binding))),
    secrets: new Map(secrets.map((s) => [s.id, s])),
  });
}

/** Read both files and build the snapshot. Corrupt files → storage_corrupt naming file and dot-paths. */
export async function loadCatalog(
  paths: CatalogFiles,
  registry: RegistryIndex,
  secrets: readonly SecretInfo[],
  options: LoadOptions = {},
): Promise<BrokerSnapshot> {
  const [broker, caps] = await Promise.all([
    readBrokerFile(paths.brokerJson),
    readCapabilitiesFile(paths.capabilitiesJson),
  ]);
  return buildSnapshot(broker, caps, registry, secrets, options);
}

// ---------------------------------------------------------------------------------------------------
// Mutations: each is one read-modify-write under withVaultLock, so concurrent CLI processes and the
// daemon never lose each other's writes.

async function mutateBroker<T>(paths: CatalogPaths, fn: (doc: BrokerFile) => T): Promise<T> {
  return withVaultLock(paths.root, async () => {
    const doc = await readBrokerFile(paths.brokerJson);
    const result = fn(doc);
    await writeBrokerFile(paths.brokerJson, doc);
    return result;
  });
}

async function mutateBindings<T>(paths: CatalogPaths, fn: (doc: CapabilitiesFile) => T): Promise<T> {
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

function usage(message: string): AivaultError {
  return new AivaultError('usage', message);
}

function checkId(value: string, what: string): void {
  if (typeof value !== 'string' || !ID_PATTERN.test(value))
    throw usage(`${what} must be an id (letters, digits, . _ - /)`);
}

/**
 * A host as the operator typed it → its canonical stored form, by the same rule (and the same port
 * allowance) invoke applies, so a host that could never be called is refused here, not at invoke time.
 */
function normalizeHostInput(raw: string, options: MutationOptions): string {
  const parsed = parseHostPattern(raw, { allowPort: options.allowNonDefaultPorts === true });
  if (!parsed.ok) {
    throw usage(
      `host ${JSON.stringify(raw)}: ${parsed.error.message} (give a bare DNS name like api.example.com or *.example.com: no scheme, port, path, IP or userinfo)`,
    );
  }
  return parsed.value;
}

export interface CreateCredentialInput {
  readonly id: string;
  readonly provider: string;
  /** `vault:secret:<id>` or a bare id; for single-slot providers. */
  readonly secretRef?: string;
  /** Placeholder → secret ref, for multi-secret credentials. */
  readonly secretRefs?: Readonly<Record<string, string>>;
  readonly auth?: AuthSpec;
  readonly hosts?: readonly string[];
  readonly params?: Readonly<Record<string, string>>;
  /** Bind the credential to an execution context (a group needs its workspace). */
  readonly workspaceId?: string;
  readonly groupId?: string;
}

export interface MutationOptions {
  /** Vault secrets, used to check refs exist and that pinned secrets stay with their provider. */
  readonly secrets?: readonly SecretInfo[];
  readonly nowMs?: number;
  /**
   * Accept `host:port` with a port other than 443: only when the vault honours
   * AIVAULT_DEV_ALLOW_NON_DEFAULT_PORTS (a verified `init --dev` vault), the only case invoke dials one.
   */
  readonly allowNonDefaultPorts?: boolean;
}

/** `--workspace-id/--group-id` of credential create → the stored binding (trimmed; group needs workspace). */
function contextOf(input: CreateCredentialInput): { workspaceId?: string; groupId?: string } {
  const workspaceId = input.workspaceId?.trim() || undefined;
  const groupId = input.groupId?.trim() || undefined;
  if (groupId !== undefined && workspaceId === undefined)
    throw usage('--group-id needs --workspace-id (a group lives in a workspace)');
  return {
    ...(workspaceId !== undefined ? { workspaceId } : {}),
    ...(groupId !== undefined ? { groupId } : {}),
  };
}

/** Validate a create request against registry + secrets. Pure; throws AivaultError (usage/policy/…). */
export function prepareCredential(
  input: CreateCredentialInput,
  registry: RegistryIndex,
  options: MutationOptions = {},
): StoredCredential {
  checkId(input.id, 'credential id');
  checkId(input.provider, 'provider');
  const registryProvider = registry.getProvider(input.provider);
  let refs: Record<string, string>;
  if (input.secretRefs && input.secretRef)
    throw usage('give either a secret ref or a secret ref map, not both');
  if (input.secretRefs) {
    refs = {};
    for (const [k, v] of Object.entries(input.secretRefs)) refs[k] = secretIdFromRef(v);
  } else if (input.secretRef) {
    const slots = registryProvider && !input.auth ? [...registryPlaceholders(registryProvider)] : ['secret'];
    if (slots.length !== 1) throw usage(`${input.provider} needs one secret per slot: ${slots.join(', ')}`);
    refs = { [slots[0] as string]: secretIdFromRef(input.secretRef) };
  } else {
    throw usage('a credential needs --secret-ref');
  }
  if (Object.keys(refs).length === 0) throw usage('a credential needs at least one secret ref');
  if (options.secrets) {
    const byId = new Map(options.secrets.map((s) => [s.id, s]));
    for (const secretId of Object.values(refs)) {
      const secret = byId.get(secretId);
      if (!secret) throw new AivaultError('not_found', `secret ${secretId} does not exist`);
      if (secret.pinnedProvider !== undefined && secret.pinnedProvider !== input.provider) {
        throw new AivaultError(
          'policy_violation',
          `secret ${secretId} is pinned to ${secret.pinnedProvider} and cannot be used by provider ${input.provider}`,
        );
      }
    }
  }
  const hosts = input.hosts?.map((h) => normalizeHostInput(h, options));
  const base = {
    id: input.id,
    provider: input.provider,
    secretRefs: refs,
    createdAtMs: options.nowMs ?? Date.now(),
    ...(input.params ? { params: { ...input.params } } : {}),
    ...contextOf(input),
  };

  if (registryProvider && !input.auth) {
    const provider = regionalProvider(registryProvider, input.params);
    if (!provider) {
      throw usage(
        `--aws-region applies to AWS providers only and must be a region name like eu-west-1 (${registryProvider.provider})`,
      );
    }
    const placeholders = registryPlaceholders(provider);
    const keys = Object.keys(refs);
    if (keys.length !== placeholders.size || !keys.every((k) => placeholders.has(k))) {
      throw usage(`${provider.provider} needs secret refs for: ${[...placeholders].join(', ')}`);
    }
    if (hosts) {
      for (const h of hosts) {
        if (isWildcardPattern(h) || !provider.hosts.some((p) => matchHost(p, h))) {
          throw new AivaultError(
            'policy_violation',
            `host ${h} is not allowed for provider ${provider.provider}`,
          );
        }
      }
    } else if (provider.hosts.some(isWildcardPattern)) {
      throw usage(`${provider.provider} uses per-tenant hosts (${provider.hosts.join(', ')}): pass --host`);
    }
    return { ...base, source: 'registry', ...(hosts ? { hosts } : {}) };
  }

  if (!input.auth || !hosts || hosts.length === 0) {
    throw usage('a custom provider needs explicit --auth and --host');
  }
  const auth = authSpecSchema.safeParse(input.auth);
  if (!auth.success) throw usage('auth is not a valid auth spec');
  for (const h of hosts) {
    const suffix = publicSuffixWildcard(h);
    if (suffix !== undefined) {
      // The same class of refusal as `*.com` ("wildcard is too wide"), so the same code: usage.
      throw usage(
        `host ${h}: wildcard is too wide: ${suffix} is a public suffix (Public Suffix List), anyone can register or deploy a name under it; list your own hosts (my-app.${suffix}) instead`,
      );
    }
  }
  const provider = registryProvider;
  if (provider && !hostsWithinProvider(hosts, provider)) {
    throw new AivaultError(
      'policy_violation',
      `provider ${provider.provider} is a registry provider; its hosts are ${provider.hosts.join(', ')}`,
    );
  }
  return { ...base, source: 'custom', auth: auth.data, hosts };
}

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

/** PATCH of a custom capability's allow rule: the lists given replace the stored ones. */
export interface CapabilityAllowPatch {
  readonly methods?: readonly string[];
  readonly pathPrefixes?: readonly string[];
}

/** Methods as stored: upper case, known, de-duplicated, at least one. */
function checkMethods(methods: readonly string[]): HttpMethod[] {
  if (methods.length === 0) throw usage('a capability needs at least one --method');
  const upper = [...new Set(methods.map((m) => m.toUpperCase()))];
  for (const m of upper) {
    if (!(HTTP_METHODS as readonly string[]).includes(m)) throw usage(`method ${m} is not supported`);
  }
  return upper as HttpMethod[];
}

/** Path prefixes as stored: normalized, no query, at least one. */
function checkPrefixes(prefixes: readonly string[]): string[] {
  if (prefixes.length === 0) throw usage('a capability needs at least one --path prefix ("/" allows all)');
  return prefixes.map((p) => {
    const r = normalizePath(p);
    if (!r.ok || r.value.query !== '') throw usage(`path prefix ${JSON.stringify(p)} is not a valid path`);
    return r.value.path;
  });
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
  const checked = policySchema.safeParse(approvalOff ? rest : input);
  if (!checked.success) {
    const fields = checked.error.issues.map((i) => i.path.join('.') || '(input)').join(', ');
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
    const merged = { ...(index === -1 ? {} : doc.policies[index]), ...checked.data };
    if (approvalOff) delete merged.approval;
    if (index === -1) doc.policies.push(merged);
    else doc.policies[index] = merged;
    return merged;
  });
}

export interface BindInput {
  readonly capabilityId: string;
  readonly secretRef: string;
  readonly scope?: Scope;
  readonly consumer?: string;
}

function sameBindingKey(
  b: Binding,
  capabilityId: string,
  scope: Scope,
  consumer: string | undefined,
): boolean {
  return (
    b.capabilityId === capabilityId &&
    b.scope.kind === scope.kind &&
    b.scope.workspaceId === scope.workspaceId &&
    b.scope.groupId === scope.groupId &&
    b.consumer === consumer
  );
}

/** Bind (or re-bind) a capability to a secret for one scope + consumer key. */
export async function bind(
  paths: CatalogPaths,
  registry: RegistryIndex,
  input: BindInput,
  options: MutationOptions = {},
): Promise<Binding> {
  const binding = {
    capabilityId: input.capabilityId,
    secretRef: `vault:secret:${secretIdFromRef(input.secretRef)}`,
    scope: input.scope ?? { kind: 'global' as const },
    ...(input.consumer !== undefined ? { consumer: input.consumer } : {}),
  };
  const checked = bindingSchema.safeParse(binding);
  if (!checked.success) throw usage('invalid binding (capability, secret ref, scope or consumer)');
  if (options.secrets && !options.secrets.some((s) => s.id === secretIdFromRef(input.secretRef))) {
    throw new AivaultError('not_found', `secret ${secretIdFromRef(input.secretRef)} does not exist`);
  }
  const broker = await readBrokerFile(paths.brokerJson);
  if (
    !registry.getCapability(input.capabilityId) &&
    !broker.capabilities.some((c) => c.id === input.capabilityId)
  ) {
    throw new AivaultError('capability_not_found', `capability ${input.capabilityId} does not exist`);
  }
  return mutateBindings(paths, (doc) => {
    doc.bindings = doc.bindings.filter(
      (b) => !sameBindingKey(b, binding.capabilityId, binding.scope, input.consumer),
    );
    doc.bindings.push(checked.data);
    return checked.data as Binding;
  });
}

export interface BindingFilter {
  readonly capabilityId?: string;
  readonly scope?: Scope;
  readonly consumer?: string;
}

function matchesFilter(b: Binding, filter: BindingFilter): boolean {
  if (filter.capabilityId !== undefined && b.capabilityId !== filter.capabilityId) return false;
  if (filter.consumer !== undefined && b.consumer !== filter.consumer) return false;
  if (filter.scope !== undefined) {
    const s = filter.scope;
    if (b.scope.kind !== s.kind || b.scope.workspaceId !== s.workspaceId || b.scope.groupId !== s.groupId)
      return false;
  }
  return true;
}

/** Remove bindings matching the filter (capabilityId required). Returns how many were removed. */
export async function unbind(
  paths: CatalogPaths,
  filter: BindingFilter & { capabilityId: string },
): Promise<number> {
  return mutateBindings(paths, (doc) => {
    const keep = doc.bindings.filter((b) => !matchesFilter(b as Binding, filter));
    const removed = doc.bindings.length - keep.length;
    if (removed === 0) throw new AivaultError('not_found', `no binding for ${filter.capabilityId} matches`);
    doc.bindings = keep;
    return removed;
  });
}

export async function listBindings(
  paths: CatalogFiles,
  filter: BindingFilter = {},
): Promise<readonly Binding[]> {
  const doc = await readCapabilitiesFile(paths.capabilitiesJson);
  return doc.bindings.filter((b) => matchesFilter(b as Binding, filter)) as Binding[];
}

/**
 * Store files → the BrokerSnapshot the pure broker reads (any thread that loads the catalog: request
 * workers, the CLI, the operator API). Registry-backed records are re-derived from the compiled registry —
 * auth and hosts never come from disk — and records that fail derivation are dropped with a warning
 * (fail closed). Also the registry views the input checks share (input.ts).
 */
import { isWildcardPattern, matchHost } from '../../core/broker/hosts.js';
import { secretIdFromRef } from '../../core/broker/resolve-credential.js';
import { isAwsRegion, regionalHosts, regionOverride } from '../../core/broker/aws-region.js';
import { capabilityFromRegistry } from '../../core/broker/resolve-capability.js';
import type {
  Binding,
  BrokerSnapshot,
  Capability,
  CapabilityPolicy,
  Credential,
  SecretInfo,
} from '../../core/broker/types.js';
import type { AuthSpec, RegistryIndex, RegistryProvider } from '../../core/registry/types.js';
import { readBrokerFile, readCapabilitiesFile, type CatalogFiles } from './files.js';
import type { BrokerFile, CapabilitiesFile, StoredCapability, StoredCredential } from './schema.js';

export interface LoadOptions {
  /** Records dropped during re-derivation (tampered or stale). Messages name ids and fields, never values. */
  readonly onWarning?: (message: string) => void;
}

export function registryPlaceholders(provider: RegistryProvider): Set<string> {
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

export function hostsWithinProvider(hosts: readonly string[], provider: RegistryProvider): boolean {
  return hosts.every((h) =>
    provider.hosts.some((p) => p === h || (!isWildcardPattern(h) && matchHost(p, h))),
  );
}

/**
 * The registry provider as a credential with these params sees it: hosts relabelled for an AWS region
 * override; the provider itself without one; undefined when params.region is set but is not a region of
 * an AWS (sigv4) provider.
 */
export function regionalProvider(
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

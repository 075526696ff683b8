/**
 * Auto-provisioning as pure decisions: given the registry, the vault's secrets and the existing
 * credentials, what should happen when a claimed secret is created or a secret is deleted.
 * No I/O: the catalog (or the secrets command) applies the result under the vault lock.
 */
import type { RegistryIndex, RegistryProvider } from '../../core/registry/types.js';
import type { Credential, Scope, SecretInfo } from '../../core/broker/types.js';

export type ProvisioningPlan =
  | { readonly kind: 'unclaimed' }
  | {
      readonly kind: 'create';
      readonly provider: string;
      readonly create: Credential;
      /** Further credentials of the same claim (several credential alternatives sharing one secret). */
      readonly more?: readonly Credential[];
      readonly capabilityCount: number;
      readonly message: string;
    }
  | {
      readonly kind: 'waiting';
      readonly provider: string;
      readonly waitingFor: readonly string[];
      readonly message: string;
    }
  | {
      readonly kind: 'exists';
      readonly provider: string;
      readonly credentialId: string;
      readonly message: string;
    };

export function sameScope(a: Scope, b: Scope): boolean {
  return a.kind === b.kind && a.workspaceId === b.workspaceId && a.groupId === b.groupId;
}

/** Credential id for an auto-provisioned credential: the provider name, suffixed by scope, then a counter. */
export function provisionedCredentialId(provider: string, scope: Scope, taken: ReadonlySet<string>): string {
  const base =
    scope.kind === 'global'
      ? provider
      : scope.kind === 'workspace'
        ? `${provider}-${scope.workspaceId ?? 'ws'}`
        : `${provider}-${scope.workspaceId ?? 'ws'}-${scope.groupId ?? 'group'}`;
  if (!taken.has(base)) return base;
  for (let n = 2; ; n++) if (!taken.has(`${base}-${n}`)) return `${base}-${n}`;
}

function hostsAreConcrete(provider: RegistryProvider): boolean {
  return provider.hosts.every((h) => !h.startsWith('*.'));
}

/**
 * Decide what creating `newSecret` means. The provider's whole `vaultSecrets` set must be present in
 * the SAME scope (a workspace key never completes a global set); otherwise report which names are
 * missing. Seed 001 wording: "Waiting for TRELLO_TOKEN to complete trello credential" /
 * "Credential auto-provisioned: trello (17 capabilities enabled)".
 */
export function planProvisioning(
  registry: RegistryIndex,
  secrets: readonly SecretInfo[],
  existing: readonly Credential[],
  newSecret: SecretInfo,
  nowMs: number = Date.now(),
): ProvisioningPlan {
  const claim = registry.claimFor(newSecret.name);
  if (!claim) return { kind: 'unclaimed' };
  const provider = registry.getProvider(claim.provider);
  if (!provider) return { kind: 'unclaimed' };
  if (claim.alternatives !== undefined) {
    return planAlternatives(provider, claim.alternatives, secrets, existing, newSecret, nowMs);
  }
  const slots = slotsFor(provider.vaultSecrets, secrets, newSecret);
  if (slots.missing.length > 0) return waiting(provider.provider, slots.missing);
  const already = existingFor(existing, provider.provider, undefined, slots.secretRefs);
  if (already) return exists(provider.provider, already.id);

  const id = provisionedCredentialId(provider.provider, newSecret.scope, new Set(existing.map((c) => c.id)));
  const create: Credential = {
    id,
    provider: provider.provider,
    auth: provider.auth,
    // Per-tenant providers (`*.myshopify.com`) keep the pattern: unusable until a concrete host is bound
    // with `credential create --host`, which is the fail-closed outcome.
    hosts: [...provider.hosts],
    secretRefs: slots.secretRefs,
    source: 'registry',
    createdAtMs: nowMs,
  };
  const count = provider.capabilities.length;
  const suffix = hostsAreConcrete(provider) ? '' : ' — bind a tenant host with credential create --host';
  return {
    kind: 'create',
    provider: provider.provider,
    create,
    capabilityCount: count,
    message: `Credential auto-provisioned: ${id} (${count} capabilities enabled)${suffix}`,
  };
}

/** Slot → secret id for a claimed set, from secrets in the SAME scope as `newSecret`; names still missing. */
function slotsFor(
  vaultSecrets: Readonly<Record<string, string>>,
  secrets: readonly SecretInfo[],
  newSecret: SecretInfo,
): { secretRefs: Record<string, string>; missing: string[] } {
  const secretRefs: Record<string, string> = {};
  const missing: string[] = [];
  for (const [name, placeholder] of Object.entries(vaultSecrets)) {
    if (name === newSecret.name) {
      secretRefs[placeholder] = newSecret.id;
      continue;
    }
    const match = secrets.find(
      (s) => s.name === name && s.id !== newSecret.id && sameScope(s.scope, newSecret.scope),
    );
    if (match) secretRefs[placeholder] = match.id;
    else missing.push(name);
  }
  return { secretRefs, missing };
}

function existingFor(
  existing: readonly Credential[],
  provider: string,
  alternative: string | undefined,
  secretRefs: Readonly<Record<string, string>>,
): Credential | undefined {
  const ids = new Set(Object.values(secretRefs));
  return existing.find(
    (c) =>
      c.provider === provider &&
      c.alternative === alternative &&
      Object.values(c.secretRefs).length === ids.size &&
      Object.values(c.secretRefs).every((id) => ids.has(id)),
  );
}

function waiting(provider: string, missing: readonly string[]): ProvisioningPlan {
  return {
    kind: 'waiting',
    provider,
    waitingFor: missing,
    message: `Waiting for ${missing.join(', ')} to complete ${provider} credential`,
  };
}

function exists(provider: string, credentialId: string): ProvisioningPlan {
  return {
    kind: 'exists',
    provider,
    credentialId,
    message: `Credential already provisioned: ${credentialId}`,
  };
}

/**
 * A secret claimed by credential alternatives (e.g. CODEX_OAUTH_JSON): one credential per alternative
 * that claims it, named `<provider>-<alternative>` (+ scope suffix), each serving only its capabilities.
 */
function planAlternatives(
  provider: RegistryProvider,
  ids: readonly string[],
  secrets: readonly SecretInfo[],
  existing: readonly Credential[],
  newSecret: SecretInfo,
  nowMs: number,
): ProvisioningPlan {
  const taken = new Set(existing.map((c) => c.id));
  const created: Credential[] = [];
  let found: Credential | undefined;
  for (const alt of provider.credentialAlternatives ?? []) {
    if (!ids.includes(alt.id)) continue;
    const slots = slotsFor(alt.vaultSecrets, secrets, newSecret);
    if (slots.missing.length > 0) return waiting(provider.provider, slots.missing);
    const already = existingFor(existing, provider.provider, alt.id, slots.secretRefs);
    if (already) {
      found ??= already;
      continue;
    }
    const id = provisionedCredentialId(`${provider.provider}-${alt.id}`, newSecret.scope, taken);
    taken.add(id);
    created.push({
      id,
      provider: provider.provider,
      auth: alt.auth,
      hosts: [...alt.hosts],
      secretRefs: slots.secretRefs,
      source: 'registry',
      createdAtMs: nowMs,
      alternative: alt.id,
      capabilities: alt.capabilities,
    });
  }
  const [first, ...more] = created;
  if (!first) return found ? exists(provider.provider, found.id) : { kind: 'unclaimed' };
  const count = created.reduce((n, c) => n + (c.capabilities?.length ?? 0), 0);
  return {
    kind: 'create',
    provider: provider.provider,
    create: first,
    ...(more.length > 0 ? { more } : {}),
    capabilityCount: count,
    message: `Credential auto-provisioned: ${created.map((c) => c.id).join(', ')} (${count} capabilities enabled)`,
  };
}

/** Credentials that must go when `secretId` is deleted (a credential with a missing secret is dead). */
export function planSecretDeletion(
  credentials: readonly Pick<Credential, 'id' | 'secretRefs'>[],
  secretId: string,
): readonly string[] {
  return credentials.filter((c) => Object.values(c.secretRefs).includes(secretId)).map((c) => c.id);
}

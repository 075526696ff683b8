/**
 * Which credential serves a request, and whether the caller's scope may see it. Pure.
 * Order: capability-bound (custom capability) → explicit envelope credential → token-pinned credential
 * → bindings (group > workspace > global, consumer-specific > generic) → the single visible credential
 * of the capability's provider (most specific scope tier wins, then the highest priority) →
 * credential_ambiguous / credential_not_found. A registry credential alternative (a Codex login for
 * OpenAI's Codex capabilities) only ever serves the capabilities it lists, on every path.
 */
import { fail, ok, type Result } from '../errors.js';
import { isWildcardPattern, matchHost } from './hosts.js';
import { regionalHosts, regionOverride } from './aws-region.js';
import type {
  Binding,
  BrokerSnapshot,
  Capability,
  Credential,
  RequestContext,
  Scope,
  SecretInfo,
} from './types.js';

export const SECRET_REF_PREFIX = 'vault:secret:';

/** `vault:secret:<id>` → `<id>`; a bare id is accepted as is. */
export function secretIdFromRef(ref: string): string {
  return ref.startsWith(SECRET_REF_PREFIX) ? ref.slice(SECRET_REF_PREFIX.length) : ref;
}

const SCOPE_RANK = { global: 0, workspace: 1, group: 2 } as const;

/**
 * SPEC §5: global secrets are visible everywhere except in a group context, where they need an
 * explicit attachment to that group; workspace secrets need the matching workspace; group secrets
 * need the matching workspace and group.
 */
export function isSecretVisible(secret: SecretInfo, context: RequestContext): boolean {
  const scope = secret.scope;
  switch (scope.kind) {
    case 'global':
      if (context.groupId === undefined) return true;
      for (const g of secret.attachedGroups) {
        if (g.groupId === context.groupId && g.workspaceId === context.workspaceId) return true;
      }
      return false;
    case 'workspace':
      return scope.workspaceId !== undefined && scope.workspaceId === context.workspaceId;
    case 'group':
      return (
        scope.workspaceId !== undefined &&
        scope.groupId !== undefined &&
        scope.workspaceId === context.workspaceId &&
        scope.groupId === context.groupId
      );
    default:
      return false; // unknown scope kind from a tampered record: fail closed
  }
}

/**
 * A credential bound to an execution context serves only that context: a workspace binding any group of
 * that workspace, a group binding exactly that group. Unbound credentials serve every context (their
 * secrets' scopes still decide).
 */
export function credentialContextMatches(credential: Credential, context: RequestContext): boolean {
  if (credential.workspaceId === undefined) return credential.groupId === undefined;
  if (credential.workspaceId !== context.workspaceId) return false;
  return credential.groupId === undefined || credential.groupId === context.groupId;
}

/** A credential is visible only if its context binding matches and every secret it references is visible. */
export function isCredentialVisible(
  credential: Credential,
  secrets: ReadonlyMap<string, SecretInfo>,
  context: RequestContext,
): boolean {
  if (!credentialContextMatches(credential, context)) return false;
  let any = false;
  for (const key in credential.secretRefs) {
    if (!Object.hasOwn(credential.secretRefs, key)) continue;
    const secret = secrets.get(credential.secretRefs[key] as string);
    if (!secret || !isSecretVisible(secret, context)) return false;
    any = true;
  }
  return any;
}

/** The most specific scope among a credential's secrets (used to prefer workspace/group over global). */
function credentialRank(credential: Credential, secrets: ReadonlyMap<string, SecretInfo>): number {
  // A context-bound credential is as specific as its binding (workspace 1, group 2).
  let rank = credential.groupId !== undefined ? 2 : credential.workspaceId !== undefined ? 1 : 0;
  for (const id of Object.values(credential.secretRefs)) {
    const kind = secrets.get(id)?.scope.kind;
    if (kind !== undefined) rank = Math.max(rank, SCOPE_RANK[kind] ?? 0);
  }
  return rank;
}

function bindingApplies(binding: Binding, capabilityId: string, context: RequestContext): boolean {
  if (binding.capabilityId !== capabilityId) return false;
  if (binding.consumer !== undefined && binding.consumer !== context.consumer) return false;
  return scopeApplies(binding.scope, context);
}

function scopeApplies(scope: Scope, context: RequestContext): boolean {
  switch (scope.kind) {
    case 'global':
      return true;
    case 'workspace':
      return scope.workspaceId !== undefined && scope.workspaceId === context.workspaceId;
    case 'group':
      return (
        scope.workspaceId !== undefined &&
        scope.workspaceId === context.workspaceId &&
        scope.groupId !== undefined &&
        scope.groupId === context.groupId
      );
    default:
      return false;
  }
}

function bindingRank(binding: Binding): number {
  return (SCOPE_RANK[binding.scope.kind] ?? 0) * 2 + (binding.consumer !== undefined ? 1 : 0);
}

const byProviderCache = new WeakMap<ReadonlyMap<string, Credential>, Map<string, Credential[]>>();

/**
 * Credentials grouped by provider, built once per snapshot (snapshots are immutable: the catalog
 * builds new Maps on every load), so resolution scans one provider's credentials, not all of them.
 */
function credentialsOf(
  credentials: ReadonlyMap<string, Credential>,
  provider: string,
): readonly Credential[] {
  let index = byProviderCache.get(credentials);
  if (!index) {
    index = new Map();
    for (const credential of credentials.values()) {
      const list = index.get(credential.provider);
      if (list) list.push(credential);
      else index.set(credential.provider, [credential]);
    }
    byProviderCache.set(credentials, index);
  }
  return index.get(provider) ?? [];
}

/** A credential alternative serves only its listed capabilities; any other credential serves all. */
export function servesCapability(credential: Credential, capabilityId: string): boolean {
  return credential.capabilities === undefined || credential.capabilities.includes(capabilityId);
}

/** True when some concrete host of the credential falls under the capability's host (or vice versa). */
export function canReachCapability(capability: Capability, credential: Credential): boolean {
  for (const capHost of regionalHosts(capability.allow.hosts, regionOverride(credential))) {
    for (const credHost of credential.hosts) {
      if (
        !isWildcardPattern(credHost)
          ? matchHost(capHost, credHost)
          : !isWildcardPattern(capHost) && matchHost(credHost, capHost)
      ) {
        return true;
      }
    }
  }
  return false;
}

export interface ResolveCredentialInput {
  readonly capability: Capability;
  readonly explicitCredential: string | undefined;
  readonly context: RequestContext;
  readonly snapshot: BrokerSnapshot;
}

/** Named-credential checks shared by every explicit path (envelope, token, custom capability). */
function useNamed(id: string, input: ResolveCredentialInput, source: string): Result<Credential> {
  const { snapshot, capability, context } = input;
  const credential = snapshot.credentials.get(id);
  // Invisible and missing look the same to the caller so scope boundaries don't leak ids.
  if (!credential || !isCredentialVisible(credential, snapshot.secrets, context)) {
    return fail('credential_not_found', `${source} credential is not available in this scope`, {
      credential: id,
    });
  }
  if (credential.provider !== capability.provider) {
    return fail('policy_violation', `${source} credential belongs to another provider`, { credential: id });
  }
  if (!servesCapability(credential, capability.id)) {
    return fail('policy_violation', `${source} credential does not serve this capability`, {
      credential: id,
      capability: capability.id,
    });
  }
  return ok(credential);
}

export function resolveCredential(input: ResolveCredentialInput): Result<Credential> {
  const { capability, explicitCredential, context, snapshot } = input;
  const pinned = context.token?.credential;
  if (pinned !== undefined && explicitCredential !== undefined && explicitCredential !== pinned) {
    return fail('policy_violation', 'the proxy token is pinned to another credential');
  }
  if (capability.source === 'custom' && capability.credentialId !== undefined) {
    const requested = explicitCredential ?? pinned;
    if (requested !== undefined && requested !== capability.credentialId) {
      return fail('policy_violation', 'this capability is bound to another credential');
    }
    if (!snapshot.credentials.has(capability.credentialId)) {
      // The capability outlives its credential (`credential delete` keeps user-defined capabilities):
      // say which credential is missing and how to bring it back. The id is the capability's own
      // (shown by `capability describe`), so naming it reveals nothing about other scopes.
      return fail(
        'credential_not_found',
        `capability ${capability.id} uses credential ${capability.credentialId}, which does not exist; recreate it with: aivault credential create ${capability.credentialId} --provider ${capability.provider} --secret-ref vault:secret:<id> …`,
        { capability: capability.id, credential: capability.credentialId },
      );
    }
    return useNamed(capability.credentialId, input, 'capability');
  }
  if (explicitCredential !== undefined) return useNamed(explicitCredential, input, 'requested');
  if (pinned !== undefined) return useNamed(pinned, input, 'token');

  // Bindings: keep only the best-ranked applicable ones.
  let best = -1;
  let bestRefs: Set<string> | undefined;
  for (const binding of snapshot.bindings) {
    if (!bindingApplies(binding, capability.id, context)) continue;
    const rank = bindingRank(binding);
    if (rank > best) {
      best = rank;
      bestRefs = new Set([secretIdFromRef(binding.secretRef)]);
    } else if (rank === best) {
      bestRefs?.add(secretIdFromRef(binding.secretRef));
    }
  }
  if (bestRefs) {
    if (bestRefs.size > 1) {
      return fail('credential_ambiguous', 'more than one binding applies with the same precedence', {
        capability: capability.id,
      });
    }
    const [secretId] = bestRefs;
    const matches: Credential[] = [];
    for (const credential of credentialsOf(snapshot.credentials, capability.provider)) {
      if (!Object.values(credential.secretRefs).includes(secretId as string)) continue;
      if (!servesCapability(credential, capability.id)) continue;
      if (!isCredentialVisible(credential, snapshot.secrets, context)) continue;
      matches.push(credential);
    }
    if (matches.length === 1) return ok(matches[0] as Credential);
    if (matches.length > 1) {
      return fail(
        'credential_ambiguous',
        'the bound secret is used by more than one credential; pass --credential',
        {
          capability: capability.id,
        },
      );
    }
    // An explicit binding whose credential is gone or out of scope must not fall back to another key.
    return fail('credential_not_found', 'the bound secret has no usable credential in this scope', {
      capability: capability.id,
    });
  }

  let topRank = -1;
  let topPriority = 0;
  let top: Credential[] = [];
  let unreachable = false;
  for (const credential of credentialsOf(snapshot.credentials, capability.provider)) {
    // Implicit choice only among credentials that can actually reach this capability's host: an
    // auto-provisioned per-tenant credential still holding the `*.myshopify.com` pattern must not make
    // the tenant-bound one ambiguous. (Named credentials are checked, and refused, by policy instead.)
    if (!servesCapability(credential, capability.id)) continue;
    if (!isCredentialVisible(credential, snapshot.secrets, context)) continue;
    if (!canReachCapability(capability, credential)) {
      unreachable = true;
      continue;
    }
    const rank = credentialRank(credential, snapshot.secrets);
    const priority = credential.priority ?? 0;
    if (rank > topRank || (rank === topRank && priority > topPriority)) {
      topRank = rank;
      topPriority = priority;
      top = [credential];
    } else if (rank === topRank && priority === topPriority) {
      top.push(credential);
    }
  }
  if (top.length === 1) return ok(top[0] as Credential);
  if (top.length === 0 && unreachable) {
    return fail(
      'policy_violation',
      'no credential in scope has a host allowed by this capability (bind a concrete host)',
      {
        capability: capability.id,
      },
    );
  }
  if (top.length === 0) {
    return fail('credential_not_found', 'no credential for this provider in scope', {
      provider: capability.provider,
    });
  }
  return fail(
    'credential_ambiguous',
    'more than one credential for this provider in scope; pass --credential',
    {
      provider: capability.provider,
    },
  );
}

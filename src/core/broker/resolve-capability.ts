/**
 * Capability lookup and proxy-token scoping. Pure. Registry ids are reserved: whatever the snapshot
 * says, a registry id always resolves to the compiled registry's definition, so a tampered or
 * hand-edited broker.json cannot shadow or widen a built-in capability.
 */
import { fail, ok, type Result } from '../errors.js';
import type { RegistryCapability, RegistryIndex } from '../registry/types.js';
import type { BrokerSnapshot, Capability, RequestContext } from './types.js';

const fromRegistryCache = new WeakMap<RegistryCapability, Capability>();

/** The Capability view of a registry entry, built once per (frozen) registry object. */
export function capabilityFromRegistry(entry: RegistryCapability): Capability {
  let cap = fromRegistryCache.get(entry);
  if (!cap) {
    cap = Object.freeze({
      id: entry.id,
      provider: entry.provider,
      allow: entry.allow,
      source: 'registry' as const,
    });
    fromRegistryCache.set(entry, cap);
  }
  return cap;
}

/**
 * True when a proxy token's capability list admits `capability`: exact id, or `provider/*` meaning
 * every capability whose provider is `provider`.
 */
export function tokenAllowsCapability(allowed: readonly string[], capability: Capability): boolean {
  for (const entry of allowed) {
    if (entry === capability.id) return true;
    if (entry.endsWith('/*') && entry.slice(0, -2) === capability.provider) return true;
  }
  return false;
}

export function resolveCapability(
  id: string,
  snapshot: BrokerSnapshot,
  registry: RegistryIndex,
  context: RequestContext,
): Result<Capability> {
  const builtIn = registry.getCapability(id);
  let capability: Capability | undefined;
  if (builtIn) {
    capability = capabilityFromRegistry(builtIn);
  } else {
    const stored = snapshot.capabilities.get(id);
    // A 'registry' entry the registry does not know is stale or forged: not a capability.
    if (stored && stored.source === 'custom') capability = stored;
  }
  if (!capability) return fail('capability_not_found', 'unknown capability', { capability: id });
  if (context.token && !tokenAllowsCapability(context.token.capabilities, capability)) {
    return fail('policy_violation', 'the proxy token is not scoped to this capability', { capability: id });
  }
  return ok(capability);
}

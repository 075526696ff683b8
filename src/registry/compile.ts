/**
 * Turns provider definitions into the frozen `RegistryIndex`: lookup maps built once so per-request
 * lookups are O(1). Pure: no file access (the JSON is compiled into the build by scripts/gen-registry.mjs).
 */
import { AivaultError } from '../errors.js';
import type { RegistryCapability, RegistryIndex, RegistryProvider, SecretClaim } from './types.js';

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const key of Object.keys(value)) deepFreeze((value as Record<string, unknown>)[key]);
  }
  return value;
}

/** Throws `internal` on inconsistent data: this only runs on build-time data, never on user input (a bug). */
export function compileRegistry(input: readonly RegistryProvider[]): RegistryIndex {
  const providers = deepFreeze(structuredClone(input) as RegistryProvider[]);
  const byProvider = new Map<string, RegistryProvider>();
  const byCapability = new Map<string, RegistryCapability>();
  const claims = new Map<string, SecretClaim>();
  for (const provider of providers) {
    if (byProvider.has(provider.provider))
      throw new AivaultError('internal', `registry: duplicate provider ${provider.provider}`);
    byProvider.set(provider.provider, provider);
    for (const capability of provider.capabilities) {
      if (byCapability.has(capability.id))
        throw new AivaultError('internal', `registry: duplicate capability ${capability.id}`);
      if (capability.provider !== provider.provider) {
        throw new AivaultError(
          'internal',
          `registry: capability ${capability.id} names provider ${capability.provider}`,
        );
      }
      byCapability.set(capability.id, capability);
    }
    for (const [secretName, placeholder] of Object.entries(provider.vaultSecrets)) {
      const existing = claims.get(secretName);
      if (existing) {
        throw new AivaultError(
          'internal',
          `registry: ${secretName} claimed by ${existing.provider} and ${provider.provider}`,
        );
      }
      claims.set(secretName, Object.freeze({ secretName, provider: provider.provider, placeholder }));
    }
  }
  return Object.freeze({
    providers,
    getProvider: (id: string) => byProvider.get(id),
    getCapability: (id: string) => byCapability.get(id),
    claimFor: (name: string) => claims.get(name),
    capabilityCount: byCapability.size,
  });
}

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
    // Names only alternatives claim (several alternatives of one provider may share one secret).
    const altClaims = new Map<string, { placeholder: string; ids: string[] }>();
    for (const alt of provider.credentialAlternatives ?? []) {
      for (const cap of alt.capabilities) {
        if (byCapability.get(cap)?.provider !== provider.provider) {
          throw new AivaultError('internal', `registry: alternative ${alt.id} names capability ${cap}`);
        }
      }
      for (const [secretName, placeholder] of Object.entries(alt.vaultSecrets)) {
        if (Object.hasOwn(provider.vaultSecrets, secretName)) continue;
        const existing = claims.get(secretName);
        if (existing) {
          throw new AivaultError(
            'internal',
            `registry: ${secretName} claimed by ${existing.provider} and ${provider.provider}`,
          );
        }
        const seen = altClaims.get(secretName);
        if (seen) seen.ids.push(alt.id);
        else altClaims.set(secretName, { placeholder, ids: [alt.id] });
      }
    }
    for (const [secretName, { placeholder, ids }] of altClaims) {
      claims.set(
        secretName,
        deepFreeze({ secretName, provider: provider.provider, placeholder, alternatives: ids }),
      );
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

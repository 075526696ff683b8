/**
 * Glue between secret lifecycle and the catalog: after a claimed secret is created, apply the pure
 * provisioning plan; after a delete, drop whatever referenced the secret. Registry is loaded lazily.
 */
import type { Config } from '../core/config/env.js';
import type { Vault, SecretMeta } from '../stores/vault/index.js';
import { toSecretInfo, vaultPaths } from '../stores/vault/index.js';
import {
  addProvisionedCredential,
  catalogPaths,
  loadCatalog,
  planProvisioning,
  removeSecretReferences,
} from '../stores/catalog/index.js';

export type ProvisionOutcome =
  | {
      readonly kind: 'provisioned';
      readonly provider: string;
      readonly credentialId: string;
      readonly capabilityCount: number;
    }
  | { readonly kind: 'waiting'; readonly provider: string; readonly missing: readonly string[] }
  | { readonly kind: 'exists'; readonly provider: string; readonly credentialId: string };

export async function afterSecretCreated(
  config: Config,
  vault: Vault,
  meta: SecretMeta,
): Promise<ProvisionOutcome | undefined> {
  const { registry } = await import('../core/registry/index.js');
  const paths = catalogPaths(vaultPaths(config).root);
  const secrets = (await vault.listSecrets()).map(toSecretInfo);
  const snapshot = await loadCatalog(paths, registry, secrets);
  const plan = planProvisioning(registry, secrets, [...snapshot.credentials.values()], toSecretInfo(meta));
  switch (plan.kind) {
    case 'unclaimed':
      return undefined;
    case 'create': {
      const credentialId = await addProvisionedCredential(paths, plan.create);
      for (const more of plan.more ?? []) await addProvisionedCredential(paths, more);
      return {
        kind: 'provisioned',
        provider: plan.provider,
        credentialId,
        capabilityCount: plan.capabilityCount,
      };
    }
    case 'waiting':
      return { kind: 'waiting', provider: plan.provider, missing: plan.waitingFor };
    case 'exists':
      return { kind: 'exists', provider: plan.provider, credentialId: plan.credentialId };
  }
}

/** Credentials, capabilities and bindings that used the secret go with it (never left dangling). */
export async function afterSecretDeleted(
  config: Config,
  _vault: Vault,
  meta: SecretMeta,
): Promise<readonly string[]> {
  const result = await removeSecretReferences(catalogPaths(vaultPaths(config).root), meta.id);
  return result.removedCredentials;
}

/** Loads what the broker sees (vault secret metadata + catalog snapshot) for listing commands. */
import type { Config } from '../../config/env.js';
import type { BrokerSnapshot, SecretInfo } from '../../broker/types.js';
import { catalogPaths, loadCatalog, type CatalogPaths } from '../../catalog/index.js';
import { Vault, toSecretInfo, vaultPaths } from '../../vault/index.js';
import type { RegistryIndex } from '../../registry/types.js';

export interface BrokerView {
  readonly vault: Vault;
  readonly paths: CatalogPaths;
  readonly registry: RegistryIndex;
  readonly secrets: readonly SecretInfo[];
  readonly snapshot: BrokerSnapshot;
}

export async function loadBrokerView(config: Config): Promise<BrokerView> {
  const { registry } = await import('../../registry/index.js');
  const vault = await Vault.open(config);
  const secrets = (await vault.listSecrets()).map(toSecretInfo);
  const paths = catalogPaths(vaultPaths(config).root);
  const snapshot = await loadCatalog(paths, registry, secrets);
  return { vault, paths, registry, secrets, snapshot };
}

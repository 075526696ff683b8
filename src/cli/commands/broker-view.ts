/** Loads what the broker sees (vault secret metadata + catalog snapshot) for listing commands. */
import type { Config } from '../../core/config/env.js';
import type { BrokerSnapshot, SecretInfo } from '../../core/broker/types.js';
import { catalogPaths, loadCatalog, type CatalogPaths } from '../../stores/catalog/index.js';
import { Vault, toSecretInfo, vaultPaths } from '../../stores/vault/index.js';
import type { RegistryIndex } from '../../core/registry/types.js';

export interface BrokerView {
  readonly vault: Vault;
  readonly paths: CatalogPaths;
  readonly registry: RegistryIndex;
  readonly secrets: readonly SecretInfo[];
  readonly snapshot: BrokerSnapshot;
  /**
   * Hosts may carry a non-default port: only a verified dev vault with AIVAULT_DEV_ALLOW_NON_DEFAULT_PORTS
   * (the same condition under which invoke dials one; a locked vault cannot verify its dev flag → false).
   */
  readonly allowNonDefaultPorts: boolean;
}

export async function loadBrokerView(config: Config): Promise<BrokerView> {
  const { registry } = await import('../../core/registry/index.js');
  const vault = await Vault.open(config);
  const secrets = (await vault.listSecrets()).map(toSecretInfo);
  const paths = catalogPaths(vaultPaths(config).root);
  const snapshot = await loadCatalog(paths, registry, secrets);
  const allowNonDefaultPorts = config.devRequested.allowNonDefaultPorts && vault.devEnabled();
  return { vault, paths, registry, secrets, snapshot, allowNonDefaultPorts };
}

/** Where every vault file lives (SPEC §3). Pure: computes paths from the Config, touches nothing. */
import { join } from 'node:path';
import type { Config } from '../../core/config/env.js';

export interface VaultPaths {
  readonly root: string;
  readonly vaultJson: string;
  readonly brokerJson: string;
  readonly capabilitiesJson: string;
  readonly secretsDir: string;
  readonly auditDir: string;
  readonly runDir: string;
  /** Key file the file provider uses when none is named (outside the vault dir unless AIVAULT_DIR is set). */
  readonly defaultKeyFile: string;
  /** Guards first-time initialisation across processes (30 s stale timeout). */
  readonly initLock: string;
}

export function vaultPaths(config: Config): VaultPaths {
  const root = config.vaultDir;
  return Object.freeze({
    root,
    vaultJson: join(root, 'vault.json'),
    brokerJson: join(root, 'broker.json'),
    capabilitiesJson: join(root, 'capabilities.json'),
    secretsDir: join(root, 'secrets'),
    auditDir: join(root, 'audit'),
    runDir: join(root, 'run'),
    defaultKeyFile: config.defaultKeyFile,
    initLock: join(root, '.init.lock'),
  });
}

export function secretRecordPath(paths: VaultPaths, id: string): string {
  return join(paths.secretsDir, `${id}.json`);
}

/**
 * The cached catalog snapshot (broker.json + capabilities.json + secret metadata → BrokerSnapshot), used by
 * the request workers' pipeline, the CLI's in-process calls, and the daemon main thread's routing of
 * `/v/…` and HTTPS-proxy calls (labelling only: policy runs in the request worker). Reads secret METADATA
 * only, never a value. In the daemon it is cached per vault generation, else reloaded when the files change.
 */
import { statSync } from 'node:fs';
import type { BrokerSnapshot, SecretInfo } from '../../core/broker/types.js';
import type { RegistryIndex } from '../../core/registry/types.js';
import { loadCatalog } from './snapshot.js';
import { loadAllRecords, toSecretInfo, toSecretMeta, type VaultPaths } from '../vault/index.js';
import { perGeneration, type Generation } from '../../core/threads/generation.js';

/**
 * Synchronous on purpose: this runs once per call (request worker, in-process CLI, or the main thread's routing), and a
 * local `stat` is a ~1 µs syscall, while `fsp.stat` costs a libuv thread-pool round trip plus promise
 * machinery — the three async stats were ~150 µs of CPU per call (bench/PROFILE.md, bench/hotpath.ts).
 */
function mtimeKey(path: string): string {
  try {
    const st = statSync(path, { throwIfNoEntry: false });
    return st ? `${st.mtimeMs}:${st.ctimeMs}:${st.size}:${st.ino}` : 'missing';
  } catch {
    return 'missing';
  }
}

/**
 * Secret metadata for the catalog, read without any key (records are read, never decrypted). A corrupt
 * record fails the load with `storage_corrupt` naming the file instead of silently dropping the secret.
 */
async function listSecretInfo(paths: VaultPaths): Promise<SecretInfo[]> {
  return (await loadAllRecords(paths)).map((rec) => toSecretInfo(toSecretMeta(rec)));
}

/**
 * Snapshot cache. In the daemon (`generation` given) it is keyed on the vault generation: a warm call
 * makes no filesystem syscall; every in-daemon writer bumps the generation before it answers, and the
 * vault watcher bumps it for hand edits (src/front/vault-watcher.ts). Without a generation (in-process
 * mode, tools) it is keyed by the stats of broker.json, capabilities.json and the secrets dir, checked on
 * every call. Either way a reload parses and validates the files exactly as a first load does.
 */
export function createCatalogCache(
  paths: VaultPaths,
  registry: RegistryIndex,
  generation?: Generation,
): () => Promise<BrokerSnapshot> {
  const load = async (): Promise<BrokerSnapshot> => loadCatalog(paths, registry, await listSecretInfo(paths));
  if (generation) return perGeneration(generation, 'catalog', load);
  let key: string | undefined;
  let snapshot: Promise<BrokerSnapshot> | undefined;
  return async () => {
    const next = `${mtimeKey(paths.brokerJson)}|${mtimeKey(paths.capabilitiesJson)}|${mtimeKey(paths.secretsDir)}`;
    if (snapshot && key === next) return snapshot;
    key = next;
    snapshot = load();
    snapshot.catch(() => {
      if (key === next) key = undefined; // retry on the next call
    });
    return snapshot;
  };
}

/**
 * Wires the pipeline to the real collaborators: catalog (broker.json/capabilities.json + secret metadata,
 * cached per vault generation in the daemon, else reloaded when the files' mtimes change), broker policy, auth strategies, audit log, undici.
 * Reads secret METADATA only (no KEK needed); secret values come from the injected SecretSource.
 */
import { statSync } from 'node:fs';
import type { Config, DevOverrides } from '../config/env.js';
import type { Result } from '../errors.js';
import type { BrokerSnapshot, Plan, SecretInfo } from '../broker/types.js';
import type { RegistryIndex } from '../registry/types.js';
import { checkRequest } from '../broker/policy.js';
import { loadCatalog } from '../catalog/index.js';
import { authClassHeaderNames, createAuth, SecretValues } from '../auth/index.js';
import type { AuthApply } from '../auth/strategy.js';
import { AuditLog } from '../audit/audit-log.js';
import { vaultPaths, loadAllRecords, toSecretInfo, toSecretMeta, type VaultPaths } from '../vault/index.js';
import type { PipelineDeps, SecretSource } from './types.js';
import type { Admission } from './rate-limit.js';
import { Upstream, type UpstreamOptions } from './upstream.js';
import { createOAuth2Refresher } from './oauth2.js';
import { perGeneration, type Generation } from '../daemon/generation.js';

export interface PipelineDepsOptions {
  readonly registry: RegistryIndex;
  readonly secrets: SecretSource;
  readonly rateLimiter?: Admission;
  readonly upstream?: Omit<UpstreamOptions, 'dev'>;
  /** The audit sealing subkey (never the KEK); absent → audit lines are written unsealed. */
  readonly auditKey?: () => Promise<Uint8Array | undefined>;
  /** The daemon's vault generation (request workers): the catalog is cached per generation. */
  readonly generation?: Generation;
}

/**
 * Synchronous on purpose: this runs once per call in a request worker (never on the main thread), and a
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
 * vault watcher bumps it for hand edits (src/daemon/vault-watcher.ts). Without a generation (in-process
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

export function createPipelineDeps(
  config: Config,
  opts: PipelineDepsOptions,
): PipelineDeps & { close(): Promise<void>; catalog(): Promise<BrokerSnapshot> } {
  const paths = vaultPaths(config);
  const snapshot = createCatalogCache(paths, opts.registry, opts.generation);
  // One open day file per pipeline (request worker / in-process call) instead of open+close per line.
  const auditLog = new AuditLog(config, paths, {
    keepOpen: true,
    ...(opts.auditKey ? { sealKey: opts.auditKey } : {}),
  });
  const upstreams = new Map<string, Upstream>();
  const authCache = new WeakMap<object, Map<string, Result<AuthApply>>>();

  const upstream = (dev: DevOverrides | undefined): Upstream => {
    const key = dev ? 'dev' : 'prod';
    let u = upstreams.get(key);
    if (!u) upstreams.set(key, (u = new Upstream({ ...opts.upstream, ...(dev ? { dev } : {}) })));
    return u;
  };

  return {
    secrets: opts.secrets,
    oauth2: createOAuth2Refresher(opts.secrets, upstream),
    ...(opts.rateLimiter ? { rateLimiter: opts.rateLimiter } : {}),
    // The same cached snapshot plan() uses (a passthrough call picks its capability from it).
    catalog: snapshot,
    async plan(envelope, context, dev) {
      const snap = await snapshot();
      const input = {
        envelope,
        context,
        snapshot: snap,
        registry: opts.registry,
        ...(dev ? { dev: { allowNonDefaultPorts: dev.allowNonDefaultPorts } } : {}),
      };
      return checkRequest(input);
    },
    async applyAuth(plan: Plan, input, bySlot) {
      let perSpec = authCache.get(plan.auth);
      if (!perSpec) authCache.set(plan.auth, (perSpec = new Map()));
      const paramsKey = JSON.stringify(plan.credentialParams);
      let apply = perSpec.get(paramsKey);
      if (!apply) perSpec.set(paramsKey, (apply = createAuth(plan.auth, plan.credentialParams)));
      if (!apply.ok) return apply;
      return apply.value(input, SecretValues.from(bySlot));
    },
    injectedHeaders(plan) {
      return new Set(authClassHeaderNames(plan.auth));
    },
    upstream,
    async audit(event) {
      await auditLog.append(event);
    },
    async close() {
      await Promise.all([...upstreams.values()].map((u) => u.close()).concat(auditLog.close()));
    },
  };
}

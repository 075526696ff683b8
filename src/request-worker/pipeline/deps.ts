/**
 * Wires the pipeline to the real collaborators: catalog snapshot (src/stores/catalog/cache.ts), broker policy, auth
 * strategies, audit log, undici. Runs in a request worker, or in the CLI process for in-process calls.
 * Reads secret METADATA only (no KEK needed); secret values come from the injected SecretSource.
 */
import type { Config, DevOverrides } from '../../core/config/env.js';
import type { Result } from '../../core/errors.js';
import type { BrokerSnapshot, Plan } from '../../core/broker/types.js';
import type { RegistryIndex } from '../../core/registry/types.js';
import { checkRequest } from '../../core/broker/policy.js';
import { authClassHeaderNames, createAuth, SecretValues } from '../auth/index.js';
import type { AuthApply } from '../auth/strategy.js';
import { AuditLog } from '../../stores/audit/audit-log.js';
import { vaultPaths } from '../../stores/vault/index.js';
import { createCatalogCache } from '../../stores/catalog/cache.js';
import type { Generation } from '../../core/threads/generation.js';
import type { PipelineDeps, SecretSource } from './types.js';
import type { Admission } from '../../core/threads/rate-limit.js';
import { Upstream, type UpstreamOptions } from './upstream.js';
import { createOAuth2Refresher } from './oauth2.js';

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

export function createPipelineDeps(
  config: Config,
  opts: PipelineDepsOptions,
): PipelineDeps & {
  close(): Promise<void>;
  catalog(): Promise<BrokerSnapshot>;
  /** Close every mTLS identity's upstream pool now (the vault was locked). */
  forgetClientIdentities(): void;
} {
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
    oauth2: createOAuth2Refresher(opts.secrets, upstream, config.testing?.oauthBackoffMs),
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
    forgetClientIdentities() {
      for (const u of upstreams.values()) u.forgetClientIdentities();
    },
    async close() {
      await Promise.all([...upstreams.values()].map((u) => u.close()).concat(auditLog.close()));
    },
  };
}

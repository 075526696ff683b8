/**
 * AIVAULTD_DISABLE=1: run the same pipeline in the calling process (no daemon, no worker threads, no
 * streaming). Secrets come from an open Vault (which holds the KEK in this process — that is exactly the
 * isolation the daemon adds, so this mode is for dev/debug). Buffered response only.
 */
import type { Config } from '../../core/config/env.js';
import { AivaultError } from '../../core/errors.js';
import type { Envelope, HeaderList, RequestContext } from '../../core/broker/types.js';
import { registry } from '../../core/registry/index.js';
import { readSecretRecord, valueRevision, vaultPaths, type Vault } from '../../stores/vault/index.js';
import { createPipelineDeps } from './deps.js';
import { invokeCapability } from './invoke.js';
import type { ResponseSink, SecretSource } from './types.js';
import { createRateLimitBuffer, RateLimiter, type Admission } from '../../core/threads/rate-limit.js';
import type { AuditInput } from '../../stores/audit/audit-log.js';

export interface InProcessResponse {
  status: number;
  headers: HeaderList;
  body: Uint8Array;
  /** Reflected secret values replaced in this response (absent when none). */
  scrubbed?: number;
  /** Set when the call's audit event could not be written (the call itself completed). */
  auditError?: string;
}

/** A SecretSource backed by an open Vault (values decrypted per call; buffers zeroed after decoding). */
export function vaultSecretSource(config: Config, vault: Vault): SecretSource {
  return {
    async devOverrides() {
      return vault.devEnabled() ? config.devRequested : undefined;
    },
    async decrypt(ids) {
      if (vault.isLocked())
        throw new AivaultError('vault_unavailable', 'the vault is locked: run `aivault unlock`');
      const out = new Map<string, string>();
      for (const id of ids) {
        const value = await vault.decryptSecret(id);
        try {
          out.set(id, value.reveal());
        } finally {
          value.dispose();
        }
      }
      return out;
    },
    // OAuth2 write-back: the refreshed token replaces the secret value (new DEK, atomic record swap).
    async write(secretId, value) {
      await vault.rotateSecret(secretId, value);
    },
    async revision(secretId) {
      return valueRevision(await readSecretRecord(vaultPaths(config), secretId));
    },
    async writeIfUnchanged(secretId, revision, value) {
      return (await vault.rotateSecretIfUnchanged(secretId, revision, value)) !== undefined;
    },
  };
}

/** The fleet's Redis admission when configured (loaded only then: ioredis stays out of plain CLI runs). */
async function fleetAdmission(
  config: Config,
  audit: (event: AuditInput) => Promise<void>,
): Promise<(Admission & { close(): Promise<void> }) | undefined> {
  const f = config.fleet;
  if (!f?.redisUrl) return undefined;
  const { RedisAdmission } = await import('../../stores/fleet/redis-admission.js');
  return new RedisAdmission({ url: f.redisUrl, fleetId: f.id, failOpen: f.failOpen, audit });
}

/** Per-process limiter: in-process mode has one caller, so a local table is exact for this process. */
let limiter: RateLimiter | undefined;

export async function invokeInProcess(
  config: Config,
  vault: Vault,
  envelope: Envelope,
  context: RequestContext = {},
  opts: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<InProcessResponse> {
  limiter ??= new RateLimiter(createRateLimitBuffer(256));
  // Fleet mode: the fleet's Redis window, as in the daemon (a local table would not be shared).
  const fleet = await fleetAdmission(config, (event) => deps.audit(event));
  const deps = createPipelineDeps(config, {
    registry,
    secrets: vaultSecretSource(config, vault),
    rateLimiter: fleet ?? limiter,
    auditKey: async () => vault.auditKey(),
  });
  let result: InProcessResponse | undefined;
  // No daemon stderr here: the failure travels back with the response so the CLI can print it.
  let auditError: string | undefined;
  const reporting = {
    ...deps,
    onAuditError(err: unknown) {
      auditError = err instanceof Error ? err.message : String(err);
    },
  };
  const sink: ResponseSink = {
    head() {},
    async chunk() {},
    end() {},
    full(status, headers, body, info) {
      result = { status, headers, body, ...(info?.scrubbed ? { scrubbed: info.scrubbed } : {}) };
    },
  };
  try {
    await invokeCapability(
      reporting,
      {
        envelope,
        context,
        stream: false,
        ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      },
      sink,
    );
  } finally {
    await Promise.all([deps.close(), fleet?.close()]);
  }
  if (!result) throw new AivaultError('internal', 'pipeline finished without a response');
  return auditError === undefined ? result : { ...result, auditError };
}

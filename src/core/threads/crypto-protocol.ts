/**
 * Messages to and from the crypto worker and the serializable config it is started with: the contract
 * shared by the main thread (pool), the request workers (crypto-client.ts) and the crypto worker. Pure: no
 * thread-specific code. workerData never carries key material: only paths and flags; the crypto worker
 * loads the KEK itself.
 */
import type { MessagePort } from 'node:worker_threads';
import { AivaultError, type WireError } from '../errors.js';
import { loadConfig, type Config } from '../config/env.js';
import type { CommandJob } from '../../crypto-worker/operator-executor.js';
import type { PolicySealState } from '../../stores/vault/policy-seal.js';

/** PolicySealState as posted between threads (the key as an ArrayBuffer, transferred). */
export type WirePolicySeal =
  { sealed: false } | { sealed: true; vaultId: string; kid: string; key: ArrayBuffer };

export function toWirePolicySeal(state: PolicySealState): { wire: WirePolicySeal; transfer: ArrayBuffer[] } {
  if (!state.sealed) return { wire: { sealed: false }, transfer: [] };
  const key = new Uint8Array(state.key); // a copy: the transfer detaches it
  return {
    wire: { sealed: true, vaultId: state.vaultId, kid: state.kid, key: key.buffer },
    transfer: [key.buffer],
  };
}

export function fromWirePolicySeal(wire: WirePolicySeal): PolicySealState {
  if (!wire.sealed) return { sealed: false };
  return { sealed: true, vaultId: wire.vaultId, kid: wire.kid, key: new Uint8Array(wire.key) };
}

export type CryptoRequest =
  | { rid: number; op: 'decrypt'; secretIds: readonly string[] }
  | { rid: number; op: 'dev' }
  /** Write a new value for a secret (OAuth2 token write-back). The buffer is transferred and zeroed. */
  | { rid: number; op: 'write'; secretId: string; value: ArrayBuffer }
  /** Exclusive OAuth2 refresh lease on a secret + its current value (read after the lease is granted). */
  | { rid: number; op: 'lease'; secretId: string }
  /** Release a lease, writing `value` first when given (transferred and zeroed). */
  | { rid: number; op: 'release'; secretId: string; leaseId: number; value?: ArrayBuffer }
  /** The audit-log sealing subkey (derived from the KEK; never the KEK itself). */
  | { rid: number; op: 'audit-key' }
  /** The verified policy-seal state and MAC subkey (stores/vault/policy-seal.ts; never the KEK itself). */
  | { rid: number; op: 'policy-seal' };

export type CryptoReply =
  | { rid: number; ok: true; values: Record<string, ArrayBuffer> }
  | { rid: number; ok: true; dev: boolean }
  | { rid: number; ok: true; written: true }
  | { rid: number; ok: true; leaseId: number; value: ArrayBuffer }
  | { rid: number; ok: true; auditKey: ArrayBuffer }
  | { rid: number; ok: true; policySeal: WirePolicySeal }
  | { rid: number; ok: false; error: WireError };

export type ControlRequest =
  | { op: 'attach'; port: MessagePort }
  | { rid: number; op: 'unlock'; passphrase: string }
  | { rid: number; op: 'lock' }
  | { rid: number; op: 'status' }
  /** Check the operator's passphrase (dashboard login on a passphrase vault); changes nothing. */
  | { rid: number; op: 'verify-passphrase'; passphrase: string }
  | ({ rid: number; op: 'command' } & CommandJob)
  /** The audit-log sealing subkey for the main thread's own audit lines (HTTP listener events). */
  | { rid: number; op: 'audit-key' }
  /** The policy-seal state for the main thread's policy reads/writes (tokens.json, admin routes). */
  | { rid: number; op: 'policy-seal' }
  | { rid: number; op: 'shutdown' };

export type ControlReply =
  | { rid: number; ok: true; data: Record<string, string | number | boolean | null> }
  | { rid: number; ok: false; error: WireError };

/** Config minus its env-reading closure (structured-cloneable). */
export type WorkerConfig = Omit<Config, 'readVar'>;
export interface CryptoWorkerData {
  config: WorkerConfig;
  /** The vault generation buffer (src/core/threads/generation.ts): counters only, never key material. */
  generation?: SharedArrayBuffer;
}

export function toWorkerConfig(config: Config): WorkerConfig {
  const { readVar: _readVar, ...rest } = config;
  return rest;
}

/**
 * Rebuild a Config inside a worker: the explicit fields the daemon was started with, plus `readVar` from
 * the worker's own environment (via core/config/env.ts, the only env reader) for the env key provider.
 */
export function configFromWorkerData(data: { config: WorkerConfig }): Config {
  const base = loadConfig();
  return Object.freeze({ ...data.config, readVar: base.readVar });
}

/**
 * A refreshed token was not written back because the secret changed after the refresh read it (a
 * `secrets rotate`, or another refresher that won): the stored value wins; the call fails and can be retried.
 * Here, not in auth/, because both sides of the crypto port raise it (crypto worker and request worker).
 */
export function tokenChangedDuringRefresh(): AivaultError {
  return new AivaultError(
    'vault_unavailable',
    'the oauth2 token secret was changed while it was being refreshed; the refreshed token was discarded (retry the call)',
  );
}

/**
 * Messages to and from the crypto worker, the serializable config it is started with, and the request
 * worker's client for it (`CryptoPortClient`). workerData never carries key material: only paths and
 * flags; the crypto worker loads the KEK itself.
 */
import type { MessagePort } from 'node:worker_threads';
import { fromWire, type WireError } from '../errors.js';
import { loadConfig, type Config } from '../config/env.js';
import type { CommandJob } from './operator-executor.js';
import type { PolicySealState } from '../vault/policy-seal.js';

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
  /** The verified policy-seal state and MAC subkey (vault/policy-seal.ts; never the KEK itself). */
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
  /** The vault generation buffer (src/daemon/generation.ts): counters only, never key material. */
  generation?: SharedArrayBuffer;
}

export function toWorkerConfig(config: Config): WorkerConfig {
  const { readVar: _readVar, ...rest } = config;
  return rest;
}

/**
 * Rebuild a Config inside a worker: the explicit fields the daemon was started with, plus `readVar` from
 * the worker's own environment (via config/env.ts, the only env reader) for the env key provider.
 */
export function configFromWorkerData(data: { config: WorkerConfig }): Config {
  const base = loadConfig();
  return Object.freeze({ ...data.config, readVar: base.readVar });
}

const UTF8 = new TextDecoder('utf-8', { fatal: false });

const CRYPTO_GONE = {
  error: 'vault_unavailable',
  message: 'the crypto worker stopped; retry the call',
} as const;

/** Request-worker side RPC client over its private port to the crypto worker. */
export class CryptoPortClient {
  private readonly port: MessagePort;
  private nextRid = 1;
  private readonly waiting = new Map<number, (reply: CryptoReply) => void>();

  /** Set when the crypto worker went away: every pending and later call fails fast. */
  private closed = false;
  private readonly closeListeners: (() => void)[] = [];

  constructor(port: MessagePort) {
    this.port = port;
    port.on('message', (reply: CryptoReply) => {
      const cb = this.waiting.get(reply.rid);
      this.waiting.delete(reply.rid);
      cb?.(reply);
    });
    // The port closes when the crypto worker dies: without this, pending decrypts would never settle and
    // every call needing a secret would hang.
    port.on('close', () => {
      this.closed = true;
      for (const [rid, cb] of this.waiting) cb({ rid, ok: false, error: CRYPTO_GONE });
      this.waiting.clear();
      for (const listener of this.closeListeners.splice(0)) listener();
    });
    port.unref();
  }

  /** Called once when the crypto worker behind this port is gone. */
  onClose(listener: () => void): void {
    if (this.closed) listener();
    else this.closeListeners.push(listener);
  }

  private call(req: CryptoRequest, transfer: ArrayBuffer[] = []): Promise<CryptoReply> {
    if (this.closed) return Promise.resolve({ rid: req.rid, ok: false, error: CRYPTO_GONE });
    return new Promise((resolve) => {
      this.waiting.set(req.rid, resolve);
      this.port.postMessage(req, transfer);
    });
  }

  /** Write a secret value back through the crypto worker (the only thread that can encrypt). */
  async write(secretId: string, value: string): Promise<void> {
    const bytes = new TextEncoder().encode(value);
    const buf = bytes.buffer as ArrayBuffer;
    const reply = await this.call({ rid: this.nextRid++, op: 'write', secretId, value: buf }, [buf]);
    if (!reply.ok) throw fromWire(reply.error);
  }

  /** Take the refresh lease on a secret; resolves with the lease id and the secret's current value. */
  async lease(secretId: string): Promise<{ leaseId: number; value: string }> {
    const reply = await this.call({ rid: this.nextRid++, op: 'lease', secretId });
    if (!reply.ok) throw fromWire(reply.error);
    if (!('leaseId' in reply)) throw fromWire({ error: 'internal', message: 'bad lease reply' });
    const bytes = new Uint8Array(reply.value);
    const value = UTF8.decode(bytes);
    bytes.fill(0);
    return { leaseId: reply.leaseId, value };
  }

  /** Release a lease, writing `value` back first when given. */
  async release(secretId: string, leaseId: number, value?: string): Promise<void> {
    let buf: ArrayBuffer | undefined;
    if (value !== undefined) buf = new TextEncoder().encode(value).buffer as ArrayBuffer;
    const reply = await this.call(
      { rid: this.nextRid++, op: 'release', secretId, leaseId, ...(buf ? { value: buf } : {}) },
      buf ? [buf] : [],
    );
    if (!reply.ok) throw fromWire(reply.error);
  }

  /** The audit-log sealing subkey (32 bytes). Rejects while the vault is locked. */
  async auditKey(): Promise<Uint8Array> {
    const reply = await this.call({ rid: this.nextRid++, op: 'audit-key' });
    if (!reply.ok) throw fromWire(reply.error);
    if (!('auditKey' in reply)) throw fromWire({ error: 'internal', message: 'bad audit-key reply' });
    return new Uint8Array(reply.auditKey);
  }

  /** The verified policy-seal state (vault_unavailable while a sealed vault is locked). */
  async policySeal(): Promise<PolicySealState> {
    const reply = await this.call({ rid: this.nextRid++, op: 'policy-seal' });
    if (!reply.ok) throw fromWire(reply.error);
    if (!('policySeal' in reply)) throw fromWire({ error: 'internal', message: 'bad policy-seal reply' });
    return fromWirePolicySeal(reply.policySeal);
  }

  async dev(): Promise<boolean> {
    const reply = await this.call({ rid: this.nextRid++, op: 'dev' });
    if (!reply.ok) throw fromWire(reply.error);
    return 'dev' in reply ? reply.dev : false;
  }

  /** Secret id → UTF-8 value. The transferred buffers are zeroed after decoding. */
  async decrypt(secretIds: readonly string[]): Promise<Map<string, string>> {
    const reply = await this.call({ rid: this.nextRid++, op: 'decrypt', secretIds });
    if (!reply.ok) throw fromWire(reply.error);
    const out = new Map<string, string>();
    if (!('values' in reply)) return out;
    for (const [id, buf] of Object.entries(reply.values)) {
      const bytes = new Uint8Array(buf);
      out.set(id, UTF8.decode(bytes));
      bytes.fill(0);
    }
    return out;
  }
}

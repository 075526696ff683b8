/**
 * The request worker's RPC client for the crypto worker, over the worker's private MessagePort (runs in
 * each request worker thread; bench/tests also run it on a plain MessageChannel). Decrypted values arrive
 * as transferred buffers and are zeroed after decoding. The message types live in crypto-protocol.ts.
 */
import type { MessagePort } from 'node:worker_threads';
import { fromWire } from '../core/errors.js';
import type { PolicySealState } from '../stores/vault/policy-seal.js';
import { fromWirePolicySeal, type CryptoReply, type CryptoRequest } from '../core/threads/crypto-protocol.js';

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

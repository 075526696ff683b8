/**
 * The crypto worker's logic (callable without a thread for tests): the ONLY holder of the KEK in the daemon.
 * The KEK lives in libsodium secure memory (vault `Kek`: sodium_malloc, no-access while idle, read-only
 * only inside `use()`). Vault meta and secret records are cached per vault generation
 * (src/core/threads/generation.ts) in the daemon, so rotate/delete take effect on the very next request without a restart
 * or a per-request stat; this thread bumps the generation after each of its own writes and on lock/unlock. Answers with plaintext secret values only to request workers (for auth
 * injection); never returns, logs or posts the KEK.
 */
import { promises as fsp } from 'node:fs';
import type { Config } from '../core/config/env.js';
import { AivaultError } from '../core/errors.js';
import { deriveAuditKey, verifyDevMac } from '../stores/vault/aead.js';
import { tokenChangedDuringRefresh } from '../core/threads/crypto-protocol.js';
import type { Kek } from '../stores/vault/secret-bytes.js';
import type { VaultPaths } from '../stores/vault/paths.js';
import { UNSEALED, type PolicySealState } from '../stores/vault/policy-seal.js';
import { verifiedSealState } from '../stores/vault/seal-state.js';
import { perGeneration, perGenerationMap, type Generation } from '../core/threads/generation.js';
import {
  decryptRecord,
  loadKek,
  readSecretRecord,
  readVaultMeta,
  secretRecordPath,
  Vault,
  valueRevision,
  vaultPaths,
  type SecretRecord,
} from '../stores/vault/index.js';

type Meta = Awaited<ReturnType<typeof readVaultMeta>>;

/** How long a lease may be held before it is taken away (a crashed holder must not block refreshes). */
export const SECRET_LEASE_TIMEOUT_MS = 30_000;

/**
 * Exclusive, expiring, FIFO leases per key. Lives in the (single-threaded) crypto worker, so every request
 * worker queues on the same table: one OAuth2 refresh per secret at a time, daemon-wide.
 */
export class LeaseTable {
  private nextId = 1;
  private readonly held = new Map<
    string,
    { id: number; timer: NodeJS.Timeout; queue: Array<(id: number) => void> }
  >();
  private readonly timeoutMs: number;

  constructor(timeoutMs = SECRET_LEASE_TIMEOUT_MS) {
    this.timeoutMs = timeoutMs;
  }

  /** Resolves with a lease id once `key` is ours. */
  acquire(key: string): Promise<number> {
    const cur = this.held.get(key);
    if (!cur) {
      const id = this.nextId++;
      this.held.set(key, { id, timer: this.expiry(key, id), queue: [] });
      return Promise.resolve(id);
    }
    return new Promise((resolve) => cur.queue.push(resolve));
  }

  /** True when `id` still holds `key`. */
  holds(key: string, id: number): boolean {
    return this.held.get(key)?.id === id;
  }

  /** Release (no-op when `id` no longer holds it); the next waiter gets the lease. */
  release(key: string, id: number): void {
    const cur = this.held.get(key);
    if (!cur || cur.id !== id) return;
    clearTimeout(cur.timer);
    const next = cur.queue.shift();
    if (!next) {
      this.held.delete(key);
      return;
    }
    cur.id = this.nextId++;
    cur.timer = this.expiry(key, cur.id);
    next(cur.id);
  }

  private expiry(key: string, id: number): NodeJS.Timeout {
    const t = setTimeout(() => this.release(key, id), this.timeoutMs);
    t.unref();
    return t;
  }
}

export interface CryptoStatus {
  [key: string]: string | number | boolean | null;
  provider: string | null;
  locked: boolean;
  kekFingerprint: string | null;
  devVerified: boolean;
}

/** Decrypt a record's value into bytes the caller owns (and should zero). */
function reveal(kek: Kek, record: SecretRecord): Uint8Array {
  const value = decryptRecord(kek, record);
  try {
    return value.revealBytes();
  } finally {
    value.dispose();
  }
}

export class CryptoService {
  private readonly config: Config;
  private readonly paths: VaultPaths;
  private kek: Kek | undefined;
  private kekMeta: Meta | undefined;
  /** Set by `lock`: a non-passphrase vault stays locked until `unlock` (no silent reload). */
  private lockedByOperator = false;
  private loading: Promise<Kek> | undefined;
  /** Write handle for token write-back (OAuth2). Lives only in this thread, like the KEK. */
  private writer: Vault | undefined;
  /** OAuth2 refresh leases, one holder per secret across all request workers. */
  private readonly leases: LeaseTable;
  /** The stored value's revision when each live lease read it (compare-and-swap on write-back). */
  private readonly leaseRevisions: Map<number, string>;

  /** The daemon's vault generation; absent (tests without a daemon): caches are keyed by file stats. */
  private readonly generation: Generation | undefined;
  private readonly metaByGeneration: (() => Promise<Meta>) | undefined;
  private readonly recordByGeneration: ((id: string) => Promise<SecretRecord>) | undefined;

  constructor(config: Config, opts: { leaseTimeoutMs?: number; generation?: Generation } = {}) {
    this.config = config;
    this.paths = vaultPaths(config);
    this.leases = new LeaseTable(opts.leaseTimeoutMs);
    this.leaseRevisions = new Map();
    this.generation = opts.generation;
    if (opts.generation) {
      this.metaByGeneration = perGeneration(opts.generation, 'vaultMeta', () => readVaultMeta(this.paths));
      this.recordByGeneration = perGenerationMap(opts.generation, 'records', (id) => this.readRecord(id));
    }
  }

  /** After a write of this thread is durable (and on lock/unlock): every thread's caches reload. */
  private bump(): void {
    this.generation?.bump();
  }

  private metaCache: { key: string; meta: Meta } | undefined;

  /** vault.json, re-parsed per generation, or (no generation) when its stat changes. */
  private async meta(): Promise<Meta> {
    if (this.metaByGeneration) return this.metaByGeneration();
    let key = 'missing';
    try {
      const st = await fsp.stat(this.paths.vaultJson);
      key = `${st.mtimeMs}:${st.ctimeMs}:${st.size}:${st.ino}`;
    } catch {
      // readVaultMeta reports the missing vault
    }
    if (this.metaCache?.key === key) return this.metaCache.meta;
    const meta = await readVaultMeta(this.paths);
    this.metaCache = { key, meta };
    return meta;
  }

  /** The current KEK; loads it for key-file/env/keychain vaults, reloads after rotate-master. */
  private async currentKek(): Promise<{ kek: Kek; meta: Meta }> {
    const meta = await this.meta();
    if (this.kek && this.kek.kekId === meta.kekId) return { kek: this.kek, meta };
    if (this.kek) {
      // rotate-master replaced the KEK on disk: drop ours.
      this.kek.dispose();
      this.kek = undefined;
    }
    if (this.lockedByOperator || meta.provider.kind === 'passphrase') {
      throw new AivaultError('vault_unavailable', 'the vault is locked: run `aivault unlock`');
    }
    this.loading ??= Promise.resolve(loadKek(this.config, meta, {})).finally(
      () => (this.loading = undefined),
    );
    const kek = await this.loading;
    if (kek.kekId !== meta.kekId) {
      kek.dispose();
      throw new AivaultError('vault_unavailable', 'the master key does not match this vault');
    }
    this.kek = kek;
    this.kekMeta = meta;
    return { kek, meta };
  }

  /** The audit-log sealing subkey of the current KEK (see deriveAuditKey). */
  async auditKey(): Promise<Buffer> {
    return deriveAuditKey((await this.currentKek()).kek);
  }

  /** Set once this worker has proven the vault sealed: it never reports that vault unsealed again. */
  private sealedVaultId: string | undefined;

  /**
   * The policy-seal state proven with the KEK (vault.json's flag re-checked against the check record on
   * every call, so a flag flipped while unlocked is caught). Callers get the MAC subkey, never the KEK.
   * Fail closed, because request workers and the main thread cache what they read with this answer:
   * a missing vault.json, a locked passphrase vault (whose flag cannot be checked) and a vault that was
   * sealed but now claims not to be (vault.json swapped for a file-key one) are errors, never "unsealed".
   */
  async policySeal(): Promise<PolicySealState> {
    const meta = await this.meta();
    let state: { kek: Kek; meta: Meta };
    try {
      state = await this.currentKek();
    } catch (err) {
      const locked = err instanceof AivaultError && err.code === 'vault_unavailable';
      if (!locked || meta.provider.kind === 'passphrase' || this.sealedVaultId !== undefined) throw err;
      return UNSEALED;
    }
    const seal = verifiedSealState(state.kek, state.meta);
    if (seal.sealed) this.sealedVaultId = seal.vaultId;
    else if (this.sealedVaultId !== undefined) {
      throw new AivaultError(
        'storage_corrupt',
        `${this.paths.vaultJson}: the vault was sealed when aivaultd unlocked it and now claims not to be (vault.json was replaced or edited)`,
        { file: this.paths.vaultJson, field: 'policySeal' },
      );
    }
    return seal;
  }

  /** True when the vault is a dev vault whose dev flag verifies against the KEK. */
  async devVerified(): Promise<boolean> {
    let state: { kek: Kek; meta: Meta };
    try {
      state = await this.currentKek();
    } catch {
      return false;
    }
    // The MAC check is a keyed hash per call otherwise; the answer only changes with vault.json or the KEK.
    if (this.devCache?.meta === state.meta && this.devCache.kek === state.kek) return this.devCache.verified;
    const dev = state.meta.dev;
    const verified = dev !== undefined && dev.enabled && verifyDevMac(state.kek, state.meta.vaultId, dev.mac);
    this.devCache = { meta: state.meta, kek: state.kek, verified };
    return verified;
  }

  private devCache: { meta: Meta; kek: Kek; verified: boolean } | undefined;

  /**
   * Parsed secret records keyed by their file's stat. Why: re-reading, parsing and schema-checking the
   * record on every call was about half of this thread's time under load; one stat keeps rotations and
   * deletions visible on the very next request (an atomic rename always changes the inode).
   */
  private readonly records = new Map<string, { key: string; record: SecretRecord }>();

  private async record(id: string): Promise<SecretRecord> {
    if (this.recordByGeneration) return this.recordByGeneration(id);
    let key: string | undefined;
    try {
      const st = await fsp.stat(secretRecordPath(this.paths, id));
      key = `${st.mtimeMs}:${st.ctimeMs}:${st.size}:${st.ino}`;
    } catch {
      this.records.delete(id); // missing or unreadable: let readSecretRecord report it
    }
    const cached = this.records.get(id);
    if (key !== undefined && cached?.key === key) return cached.record;
    const record = await this.readRecord(id);
    if (key !== undefined) this.records.set(id, { key, record });
    return record;
  }

  private readRecord(id: string): Promise<SecretRecord> {
    return readSecretRecord(this.paths, id).catch((err: unknown) => {
      if (err instanceof AivaultError && err.code === 'not_found') {
        throw new AivaultError('vault_unavailable', `secret ${id} no longer exists`);
      }
      throw err;
    });
  }

  /** Decrypt secrets by id (records re-read whenever their file changes). Caller owns (and should zero) the bytes. */
  async decrypt(secretIds: readonly string[]): Promise<Map<string, Uint8Array>> {
    const { kek } = await this.currentKek();
    const out = new Map<string, Uint8Array>();
    for (const id of secretIds) out.set(id, reveal(kek, await this.record(id)));
    return out;
  }

  /**
   * Replace a secret's value (new DEK; used to write refreshed OAuth2 tokens back atomically). Goes through
   * the vault's own locked read-modify-write, so concurrent CLI writes are never lost.
   */
  async writeSecret(id: string, value: Uint8Array): Promise<void> {
    try {
      await this.withWriter(value, (writer) => writer.rotateSecret(id, value));
    } finally {
      this.bump(); // even a failed write may have replaced the record
    }
  }

  /** Run a vault write with the daemon's writer (same locked/rotated checks as reads); zeroes `value`. */
  private async withWriter<T>(value: Uint8Array, write: (writer: Vault) => Promise<T>): Promise<T> {
    await this.currentKek();
    this.writer ??= await Vault.open(this.config, { autoInit: false, actor: 'aivaultd' });
    try {
      return await write(this.writer);
    } finally {
      value.fill(0);
    }
  }

  /**
   * Take the exclusive refresh lease on a secret (waiting for the current holder), then read its value
   * fresh from disk: a waiter sees the token the previous holder wrote. Release with `releaseSecret`.
   */
  async leaseSecret(id: string): Promise<{ leaseId: number; value: Uint8Array }> {
    const leaseId = await this.leases.acquire(id);
    try {
      const { kek } = await this.currentKek();
      // One record read for both: the revision must be that of the value the refresh starts from.
      const record = await this.record(id);
      this.leaseRevisions.set(leaseId, valueRevision(record));
      return { leaseId, value: reveal(kek, record) };
    } catch (err) {
      this.leases.release(id, leaseId);
      throw err;
    }
  }

  /**
   * Optionally write a new value, then release the lease. The write is a compare-and-swap against the value
   * the lease read: it lands only if nobody rotated the secret since. That keeps a `secrets rotate` made
   * during a refresh (the user's value wins), and still saves a token whose refresh outlived the lease when
   * nothing else wrote meanwhile (with a rotating refresh token, dropping it would lose the credential).
   */
  async releaseSecret(id: string, leaseId: number, value?: Uint8Array): Promise<void> {
    const revision = this.leaseRevisions.get(leaseId);
    this.leaseRevisions.delete(leaseId);
    try {
      if (value === undefined) return;
      if (revision === undefined) {
        value.fill(0);
        throw new AivaultError('vault_unavailable', 'cannot write the refreshed token back: unknown lease');
      }
      if (!(await this.writeSecretIfUnchanged(id, revision, value))) throw tokenChangedDuringRefresh();
    } finally {
      this.leases.release(id, leaseId);
    }
  }

  private async writeSecretIfUnchanged(id: string, revision: string, value: Uint8Array): Promise<boolean> {
    try {
      const written = await this.withWriter(value, (w) => w.rotateSecretIfUnchanged(id, revision, value));
      return written !== undefined;
    } finally {
      this.bump();
    }
  }

  async unlock(passphrase: string): Promise<CryptoStatus> {
    const meta = await this.meta();
    const kek = await loadKek(this.config, meta, { passphrase });
    if (kek.kekId !== meta.kekId) {
      kek.dispose();
      throw new AivaultError('vault_unavailable', 'the master key does not match this vault');
    }
    this.kek?.dispose();
    this.kek = kek;
    this.kekMeta = meta;
    this.lockedByOperator = false;
    this.writer?.close();
    this.writer =
      meta.provider.kind === 'passphrase'
        ? await Vault.open(this.config, { autoInit: false, passphrase, actor: 'aivaultd' })
        : undefined;
    this.bump();
    return this.status();
  }

  /**
   * Operator proof for an action the main thread performs (dashboard login): on a passphrase vault the
   * passphrase must derive this vault's KEK. Changes nothing (the derived key is disposed at once).
   */
  async verifyPassphrase(passphrase: string): Promise<CryptoStatus> {
    const meta = await this.meta();
    if (meta.provider.kind === 'passphrase') {
      if (passphrase === '') {
        throw new AivaultError(
          'operator_auth_required',
          'the dashboard is an operator action: give the vault passphrase (terminal prompt or --passphrase)',
          { action: 'dashboard', needs: 'passphrase' },
        );
      }
      const wrong = new AivaultError('operator_auth_required', 'the passphrase is wrong', {
        action: 'dashboard',
        needs: 'passphrase',
      });
      const kek = await loadKek(this.config, meta, { passphrase }).catch(() => {
        throw wrong;
      });
      const matches = kek.kekId === meta.kekId;
      kek.dispose();
      if (!matches) throw wrong;
    }
    return this.status();
  }

  lock(): CryptoStatus {
    this.kek?.dispose();
    this.kek = undefined;
    this.writer?.close();
    this.writer = undefined;
    this.lockedByOperator = true;
    this.bump(); // request workers drop their decrypted-secret caches at once
    return this.statusSync();
  }

  private statusSync(): CryptoStatus {
    return {
      provider: this.kekMeta?.provider.kind ?? null,
      locked: this.kek === undefined,
      kekFingerprint: this.kek?.fingerprint ?? null,
      devVerified: false,
    };
  }

  async status(): Promise<CryptoStatus> {
    const s = this.statusSync();
    try {
      const meta = await this.meta();
      s.provider = meta.provider.kind;
    } catch {
      // no vault yet
    }
    if (this.kek) s.devVerified = await this.devVerified();
    return s;
  }

  /** Zero the KEK (shutdown). */
  dispose(): void {
    this.kek?.dispose();
    this.kek = undefined;
    this.writer?.close();
    this.writer = undefined;
  }
}

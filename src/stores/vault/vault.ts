/**
 * The vault: key provider → KEK → per-secret DEK → value (SPEC §3, §4, §9). The `Vault` class: unlock,
 * secret CRUD and rotation, master-key rotation, policy reseal, audit of its own writes. Runs where a KEK may
 * be held: the CLI process (no daemon) and the daemon's crypto worker.
 *
 * A `Vault` instance holds this process's unlocked KEK (in sodium secure memory) and does every secret
 * lifecycle operation under the cross-process vault lock (store.ts). Records are read fresh from disk on
 * every operation, so several processes (CLI, daemon) can share one vault.
 *
 * Master-key rotation (crash-safe, all-or-nothing). Each record carries a list of DEK wraps tagged with
 * the kekId of the KEK that made them; vault.json names the live kekId. Under the vault lock:
 *   1. every record gets an additional wrap under the new KEK (old wrap kept), written atomically;
 *   2. the provider stages the new key beside the old one (file: `<keyfile>.next`; keychain:
 *      `<account>.next`; env/passphrase: nothing to stage);
 *   3. vault.json is atomically replaced naming the new kekId (passphrase: new salt + check record;
 *      dev MAC re-derived) — THIS is the commit point;
 *   4. the provider commits (file: rename `.next` over the key file; keychain: move the entry);
 *   5. the old wraps are removed from every record.
 * A crash before 3 leaves vault.json naming the old key and every record still wrapped by it. A crash
 * after 3 leaves every record wrapped by the new key; a provider whose stored key does not match the
 * kekId vault.json names finishes step 4 on load (it finds the staged key). Stale old wraps left by a
 * crash during 5 are never used (decryption picks the wrap whose kekId matches the loaded KEK) and are
 * dropped by the next rotation.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import type { Scope } from '../../core/broker/types.js';
import type { Config } from '../../core/config/env.js';
import { AivaultError } from '../../core/errors.js';
import { AuditLog } from '../audit/audit-log.js';
import type { AuditInput } from '../audit/audit-log.js';
import { addWrap, deriveAuditKey, devMac, rebindValue, sealCheck, sealValue, verifyDevMac } from './aead.js';
import type { PolicySealState } from './policy-seal.js';
import {
  POLICY_FILES,
  UNSEALED,
  derivePolicySealKey,
  policyFilePath,
  readPolicyContents,
  registerSealHolder,
} from './policy-seal.js';
import type { VaultPaths } from './paths.js';
import { secretRecordPath, vaultPaths } from './paths.js';
import { getProvider, providerKind } from './providers/index.js';
import type { ProviderName } from './providers/provider.js';
import type { ProviderKind, SecretRecord, VaultMeta } from './records.js';
import {
  PROVIDER_NAME_RE,
  SECRET_ID_RE,
  checkScope,
  readValidated,
  sameScope,
  vaultMetaSchema,
} from './records.js';
import type { Kek } from './secret-bytes.js';
import type { SecretBytes } from './secret-bytes.js';
import { randomBytes, sodium } from './sodium.js';
import { ensureDir, listRecordFiles, lockStaleMs, withVaultLock, writeJsonAtomic } from './store.js';
import {
  readVaultMeta,
  loadKek,
  readSecretRecord,
  decryptRecord,
  valueRevision,
  loadAllRecords,
  resealed,
  writeRecord,
} from './record-io.js';
import { verifiedSealState, writeSealedPolicy, verifiedPolicyContents } from './seal-state.js';
import { toSecretMeta } from './secret-meta.js';
import type { SecretMeta, SecretFilter } from './secret-meta.js';
import {
  newSecretId,
  checkName,
  checkAliases,
  checkScopeId,
  valueBytes,
  namesOf,
  ensureUnique,
} from './validate.js';

export const INIT_LOCK_STALE_MS = 30_000;
// Record I/O, projections, validation and the seal state live beside this file (record-io.ts,
// secret-meta.ts, validate.ts, seal-state.ts); the Vault class below composes them.

export interface ResealResult {
  readonly policySealed: true;
  /** False when the vault was sealed already (the files were verified and re-written). */
  readonly newlySealed: boolean;
  readonly files: readonly string[];
}

// ───────────────────────── public types ─────────────────────────

export interface CreateSecretInput {
  readonly name: string;
  readonly value: string | Uint8Array;
  readonly scope: Scope;
  readonly aliases?: readonly string[];
  readonly pinnedProvider?: string;
}

export interface InitOptions {
  readonly provider: ProviderName;
  readonly filePath?: string;
  readonly envVar?: string;
  readonly passphrase?: string;
  readonly keychainService?: string;
  readonly keychainAccount?: string;
  readonly dev?: boolean;
  readonly force?: boolean;
  /** Argon2id cost override for the passphrase provider (tests); floors apply. */
  readonly kdf?: { readonly memoryKiB?: number; readonly timeCost?: number };
  readonly actor?: string;
}

export interface OpenOptions {
  /** Auto-initialise with the file provider when vault.json is missing (default true). */
  readonly autoInit?: boolean;
  /** Unlock a passphrase vault at once. */
  readonly passphrase?: string;
  /** Recorded as `actor` on audit events. */
  readonly actor?: string;
}

export interface VaultStatus {
  readonly provider: ProviderKind;
  readonly root: string;
  readonly paths: VaultPaths;
  readonly initialized: boolean;
  readonly locked: boolean;
  /** Why the KEK is not loaded (missing key file, wrong env var…), when locked for a reason other than a passphrase. */
  readonly lockedReason?: string;
  readonly kekFingerprint: string;
  readonly dev: boolean;
  readonly secretCount: number;
  readonly createdAtMs: number;
  /** vault.json's policySeal flag (verified against the KEK wherever one is loaded). */
  readonly policySealed: boolean;
}

export interface RotateMasterResult {
  readonly kekFingerprint: string;
  readonly rewrapped: number;
  readonly notice?: string;
}

async function withInitLock<T>(paths: VaultPaths, fn: () => Promise<T>): Promise<T> {
  await ensureDir(paths.root);
  let release: () => Promise<void>;
  try {
    // proper-lockfile keys its in-process lock table by the file argument, so this must differ from the
    // vault lock's (`root`): init holds both.
    release = await lockfile.lock(join(paths.root, '.init'), {
      lockfilePath: paths.initLock,
      stale: lockStaleMs(paths.root, INIT_LOCK_STALE_MS),
      update: 5_000,
      realpath: false,
      retries: { retries: 500, factor: 1.2, minTimeout: 10, maxTimeout: 200, randomize: true },
    });
  } catch (err) {
    throw new AivaultError(
      'vault_unavailable',
      `could not take the init lock ${paths.initLock}: ${(err as Error).message}`,
    );
  }
  try {
    return await fn();
  } finally {
    await release().catch(() => undefined);
  }
}

// ───────────────────────── the Vault ─────────────────────────

export class Vault {
  readonly config: Config;
  readonly paths: VaultPaths;
  readonly audit: AuditLog;
  #meta: VaultMeta;
  #kek: Kek | undefined;
  #kekError: AivaultError | undefined;
  readonly #actor: string | undefined;
  /** Set while this instance holds a passphrase KEK: it is then this thread's policy-seal source. */
  #unregisterSeal: (() => void) | undefined;

  private constructor(
    config: Config,
    paths: VaultPaths,
    meta: VaultMeta,
    kek: Kek | undefined,
    actor?: string,
  ) {
    this.config = config;
    this.paths = paths;
    this.audit = new AuditLog(config, paths, { sealKey: async () => this.auditKey() });
    this.#meta = meta;
    this.#kek = kek;
    this.#actor = actor;
    this.#syncSealHolder();
  }

  /** Register as the policy-seal source for this vault root while holding a passphrase KEK (policy-seal.ts). */
  #syncSealHolder(): void {
    const holds = this.#kek !== undefined && this.#meta.provider.kind === 'passphrase';
    if (holds && !this.#unregisterSeal) {
      this.#unregisterSeal = registerSealHolder(this.paths.root, async () => this.policySealState());
    } else if (!holds && this.#unregisterSeal) {
      this.#unregisterSeal();
      this.#unregisterSeal = undefined;
    }
  }

  /** The verified policy-seal state (re-reads vault.json; locked → `vault_unavailable`). */
  async policySealState(): Promise<PolicySealState> {
    const kek = await this.#requireKek();
    return verifiedSealState(kek, this.#meta);
  }

  /** Open the vault at config.vaultDir, auto-initialising (file provider) when vault.json is missing. */
  static async open(config: Config, opts: OpenOptions = {}): Promise<Vault> {
    const paths = vaultPaths(config);
    let meta = await readValidated(vaultMetaSchema, paths.vaultJson);
    if (!meta) {
      if (opts.autoInit === false) {
        throw new AivaultError('vault_unavailable', `no vault at ${paths.root} (run \`aivault init\`)`, {
          file: paths.vaultJson,
        });
      }
      const created = await withInitLock(paths, async () => {
        const again = await readValidated(vaultMetaSchema, paths.vaultJson);
        if (again) return undefined;
        if ((await listRecordFiles(paths.secretsDir)).length > 0) {
          throw new AivaultError(
            'storage_corrupt',
            `${paths.vaultJson} is missing but ${paths.secretsDir} holds secrets; restore vault.json`,
            { file: paths.vaultJson },
          );
        }
        return Vault.#initLocked(config, paths, {
          provider: 'file',
          filePath: config.defaultKeyFile,
          ...(opts.actor !== undefined ? { actor: opts.actor } : {}),
        });
      });
      if (created) return created;
      meta = await readVaultMeta(paths);
    }
    const vault = new Vault(config, paths, meta, undefined, opts.actor);
    const provider = getProvider(meta.provider.kind);
    if (!provider.needsPassphrase || opts.passphrase !== undefined) {
      try {
        vault.#kek = await loadKek(
          config,
          meta,
          opts.passphrase !== undefined ? { passphrase: opts.passphrase } : {},
        );
        vault.#syncSealHolder();
      } catch (err) {
        if (!(err instanceof AivaultError) || err.code !== 'vault_unavailable') throw err;
        if (opts.passphrase !== undefined) throw err;
        vault.#kekError = err;
      }
    }
    return vault;
  }

  /** Create a vault. Refuses to replace one holding secrets unless `force` (old records moved to `secrets.bak-<ts>`). */
  static async init(config: Config, opts: InitOptions): Promise<Vault> {
    const paths = vaultPaths(config);
    providerKind(opts.provider); // usage error before taking locks
    return withInitLock(paths, () => withVaultLock(paths.root, () => Vault.#initLocked(config, paths, opts)));
  }

  static async #initLocked(config: Config, paths: VaultPaths, opts: InitOptions): Promise<Vault> {
    const kind = providerKind(opts.provider);
    const existing = await listRecordFiles(paths.secretsDir);
    if (existing.length > 0) {
      if (!opts.force) {
        throw new AivaultError(
          'conflict',
          `a vault with ${existing.length} secret(s) already exists at ${paths.root}; pass --force to replace it`,
          { root: paths.root },
        );
      }
      await fsp.rename(paths.secretsDir, `${paths.secretsDir}.bak-${Date.now()}`);
    }
    await ensureDir(paths.root);
    const vaultId = randomBytes(16).toString('hex');
    const { kek, section } = await getProvider(kind).init(
      config,
      {
        filePath: opts.filePath,
        envVar: opts.envVar,
        passphrase: opts.passphrase,
        keychainService: opts.keychainService,
        keychainAccount: opts.keychainAccount,
        kdf: opts.kdf,
      },
      vaultId,
    );
    const createdAtMs = Date.now();
    // Passphrase vaults start sealed (their check record binds the flag): the files first, then vault.json.
    const sealed = kind === 'passphrase';
    const meta: VaultMeta = {
      format: 'aivault.vault.v1',
      vaultId,
      createdAtMs,
      provider: section,
      kekId: kek.kekId,
      ...(opts.dev ? { dev: { enabled: true, mac: devMac(kek, vaultId) } } : {}),
      ...(sealed ? { policySeal: true } : {}),
    };
    if (sealed) {
      const key = derivePolicySealKey(kek, vaultId);
      await writeSealedPolicy(paths, await readPolicyContents(paths.root), [key]);
    }
    await writeJsonAtomic(paths.vaultJson, meta);
    await ensureDir(paths.secretsDir);
    const vault = new Vault(config, paths, meta, kek, opts.actor);
    await vault.#audit({ kind: 'vault.init', provider: kind, note: opts.dev ? 'dev' : undefined });
    return vault;
  }

  // ── state ──

  get meta(): VaultMeta {
    return this.#meta;
  }

  get providerKind(): ProviderKind {
    return this.#meta.provider.kind;
  }

  isLocked(): boolean {
    return this.#kek === undefined;
  }

  /** True only when vault.json's dev flag carries a valid MAC under this vault's KEK (SPEC §9). */
  devEnabled(): boolean {
    const dev = this.#meta.dev;
    if (!dev?.enabled || !this.#kek) return false;
    return verifyDevMac(this.#kek, this.#meta.vaultId, dev.mac);
  }

  async status(): Promise<VaultStatus> {
    const count = (await listRecordFiles(this.paths.secretsDir)).length;
    return {
      provider: this.#meta.provider.kind,
      root: this.paths.root,
      paths: this.paths,
      initialized: true,
      locked: this.isLocked(),
      ...(this.isLocked() && this.#kekError ? { lockedReason: this.#kekError.message } : {}),
      kekFingerprint: this.#meta.kekId.slice(0, 16),
      dev: this.devEnabled(),
      secretCount: count,
      createdAtMs: this.#meta.createdAtMs,
      policySealed: this.#meta.provider.kind === 'passphrase' && this.#meta.policySeal === true,
    };
  }

  /** Load the KEK (passphrase vaults: derive and check it; others: re-read the provider). */
  async unlock(passphrase?: string): Promise<void> {
    const meta = await readVaultMeta(this.paths);
    const kek = await loadKek(this.config, meta, passphrase !== undefined ? { passphrase } : {});
    this.#kek?.dispose();
    this.#kek = kek;
    this.#kekError = undefined;
    this.#meta = meta;
    this.#syncSealHolder();
    await this.#audit({ kind: 'vault.unlock', provider: meta.provider.kind });
  }

  /** The audit sealing subkey of the loaded KEK (see deriveAuditKey), or undefined while locked. */
  auditKey(): Uint8Array | undefined {
    return this.#kek ? deriveAuditKey(this.#kek) : undefined;
  }

  /** Forget (zero) the KEK held by this instance. */
  async lock(): Promise<void> {
    this.#kek?.dispose();
    this.#kek = undefined;
    this.#syncSealHolder();
    await this.#audit({ kind: 'vault.lock', provider: this.#meta.provider.kind });
  }

  /** Zero the KEK without auditing (process shutdown). */
  close(): void {
    this.#kek?.dispose();
    this.#kek = undefined;
    this.#syncSealHolder();
  }

  /** The KEK, re-checked against vault.json (another process may have rotated it). Call under the lock for writes. */
  async #requireKek(): Promise<Kek> {
    if (!this.#kek) {
      throw (
        this.#kekError ?? new AivaultError('vault_unavailable', 'the vault is locked; run `aivault unlock`')
      );
    }
    const meta = await readVaultMeta(this.paths);
    if (meta.kekId !== this.#kek.kekId) {
      this.#kek.dispose();
      this.#kek = undefined;
      this.#meta = meta;
      this.#syncSealHolder();
      if (getProvider(meta.provider.kind).needsPassphrase) {
        throw new AivaultError(
          'vault_unavailable',
          'the master key was rotated by another process; unlock again',
        );
      }
      this.#kek = await loadKek(this.config, meta);
    }
    this.#meta = meta;
    return this.#kek;
  }

  async #audit(ev: AuditInput): Promise<void> {
    await this.audit.append({ ...ev, ...(this.#actor !== undefined ? { actor: this.#actor } : {}) });
  }

  async #auditSecret(kind: string, rec: SecretRecord, extra: Partial<AuditInput> = {}): Promise<void> {
    await this.#audit({
      kind,
      secretId: rec.id,
      secretName: rec.name,
      scope: rec.scope,
      ...(rec.pinnedProvider !== undefined ? { provider: rec.pinnedProvider } : {}),
      ...extra,
    });
  }

  // ── master key ──

  /** Re-wrap every DEK under a new KEK, crash-safely (see the module comment). */
  async rotateMaster(input: { newKey?: string; newPassphrase?: string } = {}): Promise<RotateMasterResult> {
    const result = await withVaultLock(this.paths.root, async () => {
      const old = await this.#requireKek();
      const meta = this.#meta;
      const provider = getProvider(meta.provider.kind);
      const next = await provider.prepareRotation(this.config, meta.provider, {
        vaultId: meta.vaultId,
        newKey: input.newKey,
        newPassphrase: input.newPassphrase,
      });
      const newKek = next.kek;
      try {
        if (newKek.kekId === old.kekId) {
          throw new AivaultError('usage', 'the new master key is the same as the current one');
        }
        const records = await loadAllRecords(this.paths);
        // 1. add a wrap under the new KEK to every record (old wrap kept); older records move to the
        //    current AAD version in the same write (aead.ts addWrap)
        for (const rec of records) {
          const sealed = addWrap(old, newKek, rec, secretRecordPath(this.paths, rec.id));
          await writeRecord(this.paths, { ...rec, ...resealed(sealed) });
        }
        // 1b. policy files get a MAC under the new key beside the old one (a legacy passphrase vault is
        //     sealed from here on; its files are taken as they are). Sealed files are verified first:
        //     a rotation never blesses an edit made behind the operator's back.
        const sealPolicy = meta.provider.kind === 'passphrase';
        const oldSeal = sealPolicy ? verifiedSealState(old, meta) : UNSEALED;
        const policy = sealPolicy ? await verifiedPolicyContents(this.paths, oldSeal) : undefined;
        const newSealKey = sealPolicy ? derivePolicySealKey(newKek, meta.vaultId) : undefined;
        if (policy && newSealKey) {
          await writeSealedPolicy(this.paths, policy, oldSeal.sealed ? [oldSeal, newSealKey] : [newSealKey]);
        }
        // 2. stage the new key with the provider
        await provider.stage(this.config, next.section, newKek);
        // 3. commit point: vault.json names the new KEK
        const devOk = meta.dev?.enabled === true && verifyDevMac(old, meta.vaultId, meta.dev.mac);
        const { dev: _dropped, ...rest } = meta;
        const newMeta: VaultMeta = {
          ...rest,
          provider: next.section,
          kekId: newKek.kekId,
          rotatedAtMs: Date.now(),
          ...(devOk ? { dev: { enabled: true, mac: devMac(newKek, meta.vaultId) } } : {}),
          ...(sealPolicy ? { policySeal: true } : {}),
        };
        await writeJsonAtomic(this.paths.vaultJson, newMeta);
        this.#meta = newMeta;
        // 4. provider commit
        await provider.commit(this.config, next.section, newKek);
        // 5. drop old wraps
        for (const rec of await loadAllRecords(this.paths)) {
          const wraps = rec.wraps.filter((w) => w.kekId === newKek.kekId);
          if (wraps.length > 0 && wraps.length !== rec.wraps.length)
            await writeRecord(this.paths, { ...rec, wraps });
        }
        if (policy && newSealKey) await writeSealedPolicy(this.paths, policy, [newSealKey]);
        old.dispose();
        this.#kek = newKek;
        return {
          kekFingerprint: newKek.fingerprint,
          rewrapped: records.length,
          ...(next.notice ? { notice: next.notice } : {}),
        };
      } catch (err) {
        if (this.#kek !== newKek) newKek.dispose();
        throw err;
      }
    });
    await this.#audit({
      kind: 'vault.rotate_master',
      provider: this.#meta.provider.kind,
      note: `rewrapped ${result.rewrapped}`,
    });
    return result;
  }

  /**
   * Seal the policy files of a passphrase vault (`aivault reseal-policy`). A legacy vault is sealed as its
   * files are now: the files first, then vault.json with the flag and a check record binding it (the
   * commit point; a crash before it leaves an unsealed vault whose readers ignore the new seal fields).
   * An already sealed vault has its files verified (tampering → `storage_corrupt`) and re-written.
   */
  async resealPolicy(): Promise<ResealResult> {
    const result = await withVaultLock(this.paths.root, async () => {
      const kek = await this.#requireKek();
      const meta = this.#meta;
      if (meta.provider.kind !== 'passphrase') {
        throw new AivaultError(
          'usage',
          `only passphrase vaults are sealed: with the ${meta.provider.kind} provider, code that can edit the policy files can read the key too (docs/security.md)`,
        );
      }
      const state = verifiedSealState(kek, meta);
      const key = derivePolicySealKey(kek, meta.vaultId);
      await writeSealedPolicy(this.paths, await verifiedPolicyContents(this.paths, state), [key]);
      if (!state.sealed) {
        const next: VaultMeta = {
          ...meta,
          provider: { ...meta.provider, check: sealCheck(kek, meta.vaultId, true) },
          policySeal: true,
        };
        await writeJsonAtomic(this.paths.vaultJson, next);
        this.#meta = next;
      }
      return {
        policySealed: true as const,
        newlySealed: !state.sealed,
        files: POLICY_FILES.map((f) => policyFilePath(this.paths.root, f)),
      };
    });
    await this.#audit({
      kind: 'vault.reseal_policy',
      provider: 'passphrase',
      note: result.newlySealed ? 'sealed' : 'resealed',
    });
    return result;
  }

  // ── secrets: reads ──

  async listSecrets(filter: SecretFilter = {}): Promise<SecretMeta[]> {
    const recs = await loadAllRecords(this.paths);
    return recs
      .filter(
        (r) =>
          (filter.kind === undefined || r.scope.kind === filter.kind) &&
          (filter.workspaceId === undefined || r.scope.workspaceId === filter.workspaceId) &&
          (filter.groupId === undefined || r.scope.groupId === filter.groupId) &&
          (filter.pinnedProvider === undefined || r.pinnedProvider === filter.pinnedProvider) &&
          (filter.name === undefined || namesOf(r).includes(filter.name)),
      )
      .sort((a, b) => a.createdAtMs - b.createdAtMs || a.id.localeCompare(b.id))
      .map(toSecretMeta);
  }

  /** By id, or by name/alias (optionally within `scope`). Several matches → `conflict`; none → `not_found`. */
  async getSecret(idOrName: string, scope?: Scope): Promise<SecretMeta> {
    return toSecretMeta(await this.#find(idOrName, scope));
  }

  async #find(idOrName: string, scope?: Scope): Promise<SecretRecord> {
    if (SECRET_ID_RE.test(idOrName)) {
      try {
        return await readSecretRecord(this.paths, idOrName);
      } catch (err) {
        if (!(err instanceof AivaultError) || err.code !== 'not_found') throw err;
      }
    }
    const want = scope ? checkScope(scope) : undefined;
    const matches = (await loadAllRecords(this.paths)).filter(
      (r) => namesOf(r).includes(idOrName) && (!want || sameScope(r.scope, want)),
    );
    if (matches.length === 1 && matches[0]) return matches[0];
    if (matches.length === 0) throw new AivaultError('not_found', `no secret ${JSON.stringify(idOrName)}`);
    throw new AivaultError(
      'conflict',
      `${matches.length} secrets are named ${idOrName}; give the id or a scope`,
    );
  }

  /** Decrypt a secret value for the in-process pipeline. The caller must `dispose()` it. */
  async decryptSecret(id: string): Promise<SecretBytes> {
    const kek = await this.#requireKek();
    const rec = await readSecretRecord(this.paths, id);
    return decryptRecord(kek, rec, secretRecordPath(this.paths, id));
  }

  // ── secrets: writes ──

  async createSecret(input: CreateSecretInput): Promise<SecretMeta> {
    const rec = await withVaultLock(this.paths.root, async () => {
      const kek = await this.#requireKek();
      return this.#createLocked(kek, input, await loadAllRecords(this.paths));
    });
    await this.#auditSecret('secret.create', rec);
    return toSecretMeta(rec);
  }

  #newRecord(kek: Kek, input: CreateSecretInput, all: readonly SecretRecord[]): SecretRecord {
    const name = checkName(input.name, 'name');
    const aliases = checkAliases(input.aliases, name);
    const scope = checkScope(input.scope);
    if (input.pinnedProvider !== undefined && !PROVIDER_NAME_RE.test(input.pinnedProvider)) {
      throw new AivaultError('usage', `pinnedProvider must match ${PROVIDER_NAME_RE.source}`, {
        field: 'pinnedProvider',
      });
    }
    ensureUnique(all, scope, [name, ...aliases]);
    const id = newSecretId();
    const binding = { id, scope, pinnedProvider: input.pinnedProvider };
    const { bytes, owned } = valueBytes(input.value);
    let sealed;
    try {
      sealed = sealValue(kek, binding, bytes);
    } finally {
      if (owned) sodium.sodium_memzero(bytes);
    }
    const now = Date.now();
    return {
      format: 'aivault.secret.v1',
      id,
      name,
      aliases,
      scope: { ...scope },
      ...(input.pinnedProvider !== undefined ? { pinnedProvider: input.pinnedProvider } : {}),
      attachedGroups: [],
      createdAtMs: now,
      updatedAtMs: now,
      alg: 'xchacha20poly1305-ietf',
      ...resealed(sealed),
    };
  }

  async #createLocked(kek: Kek, input: CreateSecretInput, all: SecretRecord[]): Promise<SecretRecord> {
    const rec = this.#newRecord(kek, input, all);
    await writeRecord(this.paths, rec);
    all.push(rec);
    return rec;
  }

  /** Rename / re-alias. Scope and pinnedProvider are immutable (they are bound into the ciphertext). */
  async updateSecret(id: string, patch: { name?: string; aliases?: readonly string[] }): Promise<SecretMeta> {
    const rec = await withVaultLock(this.paths.root, async () => {
      const cur = await readSecretRecord(this.paths, id);
      const name = patch.name !== undefined ? checkName(patch.name, 'name') : cur.name;
      const aliases =
        patch.aliases !== undefined
          ? checkAliases(patch.aliases, name)
          : cur.aliases.filter((a) => a !== name);
      ensureUnique(await loadAllRecords(this.paths), cur.scope, [name, ...aliases], cur.id);
      const next: SecretRecord = { ...cur, name, aliases, updatedAtMs: Date.now() };
      await writeRecord(this.paths, next);
      return next;
    });
    await this.#auditSecret('secret.update', rec);
    return toSecretMeta(rec);
  }

  /** Replace the value under a new DEK. */
  async rotateSecret(id: string, value: string | Uint8Array): Promise<SecretMeta> {
    const rec = await withVaultLock(this.paths.root, async () => {
      const kek = await this.#requireKek();
      return this.#rotateLocked(kek, await readSecretRecord(this.paths, id), value);
    });
    await this.#auditSecret('secret.rotate', rec);
    return toSecretMeta(rec);
  }

  /**
   * Compare-and-swap rotate: replace the value only if the stored ciphertext is still the one identified by
   * `revision` (see `valueRevision`), checked under the vault lock. Returns undefined, writing nothing, when
   * someone else rotated it first. Used for OAuth2 token write-back so a refresh that started before a
   * `secrets rotate` cannot overwrite the user's new value.
   */
  async rotateSecretIfUnchanged(
    id: string,
    revision: string,
    value: string | Uint8Array,
  ): Promise<SecretMeta | undefined> {
    const rec = await withVaultLock(this.paths.root, async () => {
      const kek = await this.#requireKek();
      const cur = await readSecretRecord(this.paths, id);
      if (valueRevision(cur) !== revision) return undefined;
      return this.#rotateLocked(kek, cur, value);
    });
    if (rec === undefined) return undefined;
    await this.#auditSecret('secret.rotate', rec);
    return toSecretMeta(rec);
  }

  async #rotateLocked(kek: Kek, cur: SecretRecord, value: string | Uint8Array): Promise<SecretRecord> {
    const { bytes, owned } = valueBytes(value);
    let sealed;
    try {
      sealed = sealValue(kek, cur, bytes);
    } finally {
      if (owned) sodium.sodium_memzero(bytes);
    }
    const now = Date.now();
    const next: SecretRecord = { ...cur, ...resealed(sealed), updatedAtMs: now, rotatedAtMs: now };
    await writeRecord(this.paths, next);
    return next;
  }

  async deleteSecret(id: string): Promise<SecretMeta> {
    const rec = await withVaultLock(this.paths.root, async () => {
      const cur = await readSecretRecord(this.paths, id);
      await fsp.rm(secretRecordPath(this.paths, id));
      return cur;
    });
    await this.#auditSecret('secret.delete', rec);
    return toSecretMeta(rec);
  }

  /** Let a global/workspace secret resolve in group `workspaceId/groupId`. Idempotent. */
  async attachGroup(id: string, workspaceId: string, groupId: string): Promise<SecretMeta> {
    checkScopeId(workspaceId, 'workspaceId');
    checkScopeId(groupId, 'groupId');
    const rec = await withVaultLock(this.paths.root, async () => {
      const cur = await readSecretRecord(this.paths, id);
      if (cur.scope.kind === 'group') {
        throw new AivaultError('usage', 'a group-scoped secret cannot be attached to another group');
      }
      if (cur.scope.kind === 'workspace' && cur.scope.workspaceId !== workspaceId) {
        throw new AivaultError(
          'usage',
          `secret ${cur.name} belongs to workspace ${cur.scope.workspaceId ?? ''}`,
        );
      }
      if (cur.attachedGroups.some((g) => g.workspaceId === workspaceId && g.groupId === groupId)) return cur;
      return this.#rebindLocked(cur, [...cur.attachedGroups, { workspaceId, groupId }]);
    });
    await this.#auditSecret('secret.attach_group', rec, { workspaceId, groupId });
    return toSecretMeta(rec);
  }

  async detachGroup(id: string, workspaceId: string, groupId: string): Promise<SecretMeta> {
    const rec = await withVaultLock(this.paths.root, async () => {
      const cur = await readSecretRecord(this.paths, id);
      const kept = cur.attachedGroups.filter(
        (g) => !(g.workspaceId === workspaceId && g.groupId === groupId),
      );
      if (kept.length === cur.attachedGroups.length) {
        throw new AivaultError(
          'not_found',
          `secret ${cur.name} is not attached to group ${workspaceId}/${groupId}`,
        );
      }
      return this.#rebindLocked(cur, kept);
    });
    await this.#auditSecret('secret.detach_group', rec, { workspaceId, groupId });
    return toSecretMeta(rec);
  }

  /**
   * Write `cur` with new group attachments. They are bound into the value's AAD (aead.ts, v3), so the
   * value is re-sealed: this needs the KEK, like a rotation (a locked passphrase vault fails with
   * vault_unavailable; while aivaultd serves the vault the command runs there).
   */
  async #rebindLocked(
    cur: SecretRecord,
    attachedGroups: SecretRecord['attachedGroups'],
  ): Promise<SecretRecord> {
    const kek = await this.#requireKek();
    const next: SecretRecord = { ...cur, attachedGroups, updatedAtMs: Date.now() };
    const sealed = rebindValue(kek, cur, next, secretRecordPath(this.paths, cur.id));
    const written: SecretRecord = { ...next, ...resealed(sealed) };
    await writeRecord(this.paths, written);
    return written;
  }

  /** Import KEY=VALUE pairs into `scope`: existing names are rotated, new names created. */
  async importEntries(
    entries: readonly { name: string; value: string | Uint8Array }[],
    scope: Scope,
  ): Promise<SecretMeta[]> {
    const s = checkScope(scope);
    for (const e of entries) checkName(e.name, 'name');
    const done = await withVaultLock(this.paths.root, async () => {
      const kek = await this.#requireKek();
      const all = await loadAllRecords(this.paths);
      const out: { rec: SecretRecord; created: boolean }[] = [];
      for (const e of entries) {
        const existing = all.find((r) => sameScope(r.scope, s) && namesOf(r).includes(e.name));
        if (existing) {
          const rec = await this.#rotateLocked(kek, existing, e.value);
          all.splice(all.indexOf(existing), 1, rec);
          out.push({ rec, created: false });
        } else {
          out.push({
            rec: await this.#createLocked(kek, { name: e.name, value: e.value, scope: s }, all),
            created: true,
          });
        }
      }
      return out;
    });
    for (const { rec, created } of done)
      await this.#auditSecret('secret.import', rec, { note: created ? 'created' : 'rotated' });
    return done.map((d) => toSecretMeta(d.rec));
  }
}

/** Convenience for callers holding only a Config. */
export function pathsFor(config: Config): VaultPaths {
  return vaultPaths(config);
}

export type { SecretRecord, VaultMeta, ProviderKind };

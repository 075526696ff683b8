/**
 * Vault record I/O (any thread or process that opens the vault: CLI, crypto worker, main-thread catalog
 * loads): vault.json and secret records read and validated, the KEK loaded from the provider, records decrypted
 * and written. No lock here: callers hold the vault lock (store.ts) around writes.
 */
import { join } from 'node:path';
import type { Config } from '../../core/config/env.js';
import { AivaultError } from '../../core/errors.js';
import { openValue, type SealedValue } from './aead.js';
import type { VaultPaths } from './paths.js';
import { secretRecordPath } from './paths.js';
import { getProvider } from './providers/index.js';
import type { SecretRecord, VaultMeta } from './records.js';
import { SECRET_ID_RE, readValidated, secretRecordSchema, vaultMetaSchema } from './records.js';
import type { Kek } from './secret-bytes.js';
import type { SecretBytes } from './secret-bytes.js';
import { ensureDir, listRecordFiles, writeJsonAtomic } from './store.js';

// ───────────────────────── low-level API (also used by the daemon's crypto worker) ─────────────────────────

/** Read and validate vault.json. Missing → `vault_unavailable` (not initialised). */
export async function readVaultMeta(paths: VaultPaths): Promise<VaultMeta> {
  const meta = await readValidated(vaultMetaSchema, paths.vaultJson);
  if (!meta) {
    throw new AivaultError('vault_unavailable', `no vault at ${paths.root} (run \`aivault init\`)`, {
      file: paths.vaultJson,
    });
  }
  return meta;
}

/** Produce the live KEK named by `meta` from its provider. Passphrase vaults need `opts.passphrase`. */
export async function loadKek(
  config: Config,
  meta: VaultMeta,
  opts: { passphrase?: string } = {},
): Promise<Kek> {
  return getProvider(meta.provider.kind).load(config, meta.provider, {
    vaultId: meta.vaultId,
    expectedKekId: meta.kekId,
    passphrase: opts.passphrase,
    policySeal: meta.policySeal === true,
  });
}

/** Read and validate `secrets/<id>.json` fresh from disk. Missing/invalid id → `not_found`. */
export async function readSecretRecord(paths: VaultPaths, id: string): Promise<SecretRecord> {
  if (!SECRET_ID_RE.test(id)) throw new AivaultError('not_found', `no secret with id ${JSON.stringify(id)}`);
  const file = secretRecordPath(paths, id);
  const rec = await readValidated(secretRecordSchema, file);
  if (!rec) throw new AivaultError('not_found', `no secret with id ${id}`);
  if (rec.id !== id) {
    throw new AivaultError(
      'storage_corrupt',
      `${file}: field id does not match the file name (record moved?)`,
      {
        file,
        field: 'id',
      },
    );
  }
  return rec;
}

/** Decrypt a record's value with `kek`. Tampering → `storage_corrupt`; wrong/stale KEK → `vault_unavailable`. */
export function decryptRecord(
  kek: Kek,
  record: SecretRecord,
  file = `secrets/${record.id}.json`,
): SecretBytes {
  return openValue(kek, record, file);
}

/**
 * Identifies one stored value: the value nonce is fresh random bytes on every seal, so it changes on every
 * write of the value (create, rotate, write-back) and on nothing else.
 */
export function valueRevision(record: SecretRecord): string {
  return record.value.nonce;
}

/**
 * Every secret record, validated. A corrupt or misnamed record is `storage_corrupt` naming its file, never
 * skipped (a silently missing secret would make its credential vanish from the catalog); a record deleted
 * between listing and reading is simply gone.
 */
export async function loadAllRecords(paths: VaultPaths): Promise<SecretRecord[]> {
  const out: SecretRecord[] = [];
  for (const name of await listRecordFiles(paths.secretsDir)) {
    const id = name.slice(0, -'.json'.length);
    if (!SECRET_ID_RE.test(id)) {
      throw new AivaultError('storage_corrupt', `${join(paths.secretsDir, name)}: not a secret record name`, {
        file: join(paths.secretsDir, name),
      });
    }
    try {
      out.push(await readSecretRecord(paths, id));
    } catch (err) {
      if (err instanceof AivaultError && err.code === 'not_found') continue; // deleted meanwhile
      throw err;
    }
  }
  return out;
}

/** The record fields a seal produces, as plain copies for the file. */
export function resealed(sealed: SealedValue): Pick<SecretRecord, 'aadVersion' | 'value' | 'wraps'> {
  return {
    aadVersion: sealed.aadVersion,
    value: { ...sealed.value },
    wraps: sealed.wraps.map((w) => ({ ...w })),
  };
}

export async function writeRecord(paths: VaultPaths, rec: SecretRecord): Promise<void> {
  await ensureDir(paths.secretsDir);
  await writeJsonAtomic(secretRecordPath(paths, rec.id), rec);
}

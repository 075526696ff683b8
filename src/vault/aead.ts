/**
 * The vault's envelope encryption (SPEC §4). KEK → per-secret random DEK → value.
 *
 *   value:      XChaCha20-Poly1305(DEK, nonce₁, plaintext, AAD = secretAad(id, scope, pinnedProvider))
 *   wrapped DEK: XChaCha20-Poly1305(KEK, nonce₂, DEK,      AAD = dekAad(id, kekId))
 *
 * Both nonces are fresh random 24-byte values. AADs are a canonical, unambiguous encoding: a version
 * label followed by fields, each `u8 present` + `u32be length` + UTF-8 bytes. So a ciphertext (or a
 * wrapped DEK) moved into another record, or a record whose scope / pinned provider was edited on disk,
 * fails authentication.
 *
 * Failure rule: any authentication failure is `storage_corrupt` (the file was tampered with, corrupted
 * or moved) — EXCEPT an unwrap failure with a KEK whose id the record does not list, which is
 * `vault_unavailable` (wrong or stale master key; see `findWrap`). Messages never contain key or value bytes.
 */
import { AivaultError } from '../errors.js';
import type { Scope } from '../broker/types.js';
import type { Kek } from './secret-bytes.js';
import { SecretBytes } from './secret-bytes.js';
import { KEY_BYTES, NONCE_BYTES, TAG_BYTES, randomBytes, sodium } from './sodium.js';

export const AAD_VERSION = 2;
const SECRET_AAD_LABEL = 'aivault:secret:v2';
const DEK_AAD_LABEL = 'aivault:dek:v2';
const CHECK_AAD_LABEL = 'aivault:kek-check:v1';

/** Canonical length-prefixed encoding of a list of optional strings. */
export function encodeFields(fields: readonly (string | undefined)[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of fields) {
    if (f === undefined) {
      parts.push(Buffer.from([0]));
      continue;
    }
    const bytes = Buffer.from(f, 'utf8');
    const head = Buffer.alloc(5);
    head[0] = 1;
    head.writeUInt32BE(bytes.length, 1);
    parts.push(head, bytes);
  }
  return Buffer.concat(parts);
}

export function secretAad(id: string, scope: Scope, pinnedProvider: string | undefined): Buffer {
  return encodeFields([SECRET_AAD_LABEL, id, scope.kind, scope.workspaceId, scope.groupId, pinnedProvider]);
}

export function dekAad(id: string, kekId: string): Buffer {
  return encodeFields([DEK_AAD_LABEL, id, kekId]);
}

export interface AeadBlob {
  /** base64 24-byte nonce */
  readonly nonce: string;
  /** base64 ciphertext ‖ 16-byte tag */
  readonly ciphertext: string;
}

export function seal(key: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): AeadBlob {
  const nonce = randomBytes(NONCE_BYTES);
  const out = Buffer.alloc(plaintext.length + TAG_BYTES);
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(out, plaintext, aad, null, nonce, key);
  return { nonce: nonce.toString('base64'), ciphertext: out.toString('base64') };
}

/** Decrypt; `undefined` when authentication fails (the caller picks the error). Output is caller-owned. */
export function open(key: Uint8Array, blob: AeadBlob, aad: Uint8Array): Buffer | undefined {
  const nonce = Buffer.from(blob.nonce, 'base64');
  const ct = Buffer.from(blob.ciphertext, 'base64');
  if (nonce.length !== NONCE_BYTES || ct.length < TAG_BYTES) return undefined;
  const out = Buffer.alloc(ct.length - TAG_BYTES);
  try {
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, ct, aad, nonce, key);
    return out;
  } catch {
    sodium.sodium_memzero(out);
    return undefined;
  }
}

export interface DekWrap extends AeadBlob {
  readonly kekId: string;
}

/** The encrypted part of a secret record. */
export interface SealedValue {
  readonly aadVersion: number;
  readonly value: AeadBlob;
  /** One wrap per KEK; normally one, two only while a master-key rotation is in flight. */
  readonly wraps: readonly DekWrap[];
}

export interface RecordBinding {
  readonly id: string;
  readonly scope: Scope;
  readonly pinnedProvider?: string | undefined;
}

/** Wrap a DEK under `kek` for secret `id`. */
export function wrapDek(kek: Kek, id: string, dek: Uint8Array): DekWrap {
  const blob = kek.use((k) => seal(k, dek, dekAad(id, kek.kekId)));
  return { kekId: kek.kekId, ...blob };
}

/** Encrypt a new value under a fresh random DEK wrapped by `kek`. Zeroes the DEK. */
export function sealValue(kek: Kek, rec: RecordBinding, plaintext: Uint8Array): SealedValue {
  const dek = randomBytes(KEY_BYTES);
  try {
    const value = seal(dek, plaintext, secretAad(rec.id, rec.scope, rec.pinnedProvider));
    return { aadVersion: AAD_VERSION, value, wraps: [wrapDek(kek, rec.id, dek)] };
  } finally {
    sodium.sodium_memzero(dek);
  }
}

function findWrap(kek: Kek, rec: RecordBinding & SealedValue, file: string): DekWrap {
  const wrap = rec.wraps.find((w) => w.kekId === kek.kekId);
  if (!wrap) {
    throw new AivaultError(
      'vault_unavailable',
      `${file}: secret ${rec.id} is not wrapped by the current master key (kekId ${kek.fingerprint}); ` +
        'the master key was rotated or the wrong key is loaded',
      { file, field: 'wraps' },
    );
  }
  return wrap;
}

/** Unwrap the record's DEK (caller must zero it). */
export function unwrapDek(kek: Kek, rec: RecordBinding & SealedValue, file: string): Buffer {
  const wrap = findWrap(kek, rec, file);
  const dek = kek.use((k) => open(k, wrap, dekAad(rec.id, kek.kekId)));
  if (!dek || dek.length !== KEY_BYTES) {
    throw new AivaultError(
      'storage_corrupt',
      `${file}: the wrapped data key of secret ${rec.id} failed authentication (tampered, corrupt or moved)`,
      { file, field: 'wraps' },
    );
  }
  return dek;
}

/** Decrypt a record's value. `file` only names the record in error messages. */
export function openValue(kek: Kek, rec: RecordBinding & SealedValue, file: string): SecretBytes {
  if (rec.aadVersion !== AAD_VERSION) {
    throw new AivaultError('storage_corrupt', `${file}: unsupported aadVersion ${rec.aadVersion}`, {
      file,
      field: 'aadVersion',
    });
  }
  const dek = unwrapDek(kek, rec, file);
  try {
    const plain = open(dek, rec.value, secretAad(rec.id, rec.scope, rec.pinnedProvider));
    if (!plain) {
      throw new AivaultError(
        'storage_corrupt',
        `${file}: the value of secret ${rec.id} failed authentication (ciphertext, scope or pinned provider ` +
          'was tampered with, corrupted or moved)',
        { file, field: 'value' },
      );
    }
    return new SecretBytes(plain);
  } finally {
    sodium.sodium_memzero(dek);
  }
}

/** Add a wrap for `newKek` (keeping existing wraps). Used by master-key rotation. */
export function addWrap(
  oldKek: Kek,
  newKek: Kek,
  rec: RecordBinding & SealedValue,
  file: string,
): SealedValue {
  const dek = unwrapDek(oldKek, rec, file);
  try {
    const others = rec.wraps.filter((w) => w.kekId !== newKek.kekId);
    return { aadVersion: rec.aadVersion, value: rec.value, wraps: [...others, wrapDek(newKek, rec.id, dek)] };
  } finally {
    sodium.sodium_memzero(dek);
  }
}

/**
 * KEK check record: proves a passphrase-derived KEK without storing it. Its AAD also binds vault.json's
 * `policySeal` flag (policy-seal.ts): a sealed vault's record verifies only with the flag set, so whoever
 * can edit vault.json but not derive the KEK cannot turn sealing off (unlock then fails). Unsealed
 * (legacy) records keep their original AAD.
 */
function checkAad(vaultId: string, policySeal: boolean): Buffer {
  return encodeFields(policySeal ? [CHECK_AAD_LABEL, vaultId, POLICY_SEAL_FLAG] : [CHECK_AAD_LABEL, vaultId]);
}
const POLICY_SEAL_FLAG = 'policySeal';

export function sealCheck(kek: Kek, vaultId: string, policySeal = false): AeadBlob {
  const probe = randomBytes(32);
  return kek.use((k) => seal(k, probe, checkAad(vaultId, policySeal)));
}

export function verifyCheck(kek: Kek, vaultId: string, blob: AeadBlob, policySeal = false): boolean {
  const out = kek.use((k) => open(k, blob, checkAad(vaultId, policySeal)));
  if (!out) return false;
  sodium.sodium_memzero(out);
  return true;
}

const DEV_CONTEXT = Buffer.from('aivdev01');
const AUDIT_CONTEXT = Buffer.from('aivaud01');

/**
 * The audit-log sealing key: a subkey of the KEK (libsodium crypto_kdf, context "aivaud01"). Whoever holds
 * it can seal audit lines and nothing else; the KEK itself never leaves its holder. 32 bytes.
 */
export function deriveAuditKey(kek: Kek): Buffer {
  const sub = Buffer.alloc(32);
  kek.use((k) => sodium.crypto_kdf_derive_from_key(sub, 1, AUDIT_CONTEXT, k));
  return sub;
}

function devMessage(vaultId: string): Buffer {
  return Buffer.from(`dev:1:${vaultId}`, 'utf8');
}

function withDevKey<T>(kek: Kek, fn: (key: Buffer) => T): T {
  const sub = Buffer.alloc(sodium.crypto_auth_KEYBYTES);
  try {
    kek.use((k) => sodium.crypto_kdf_derive_from_key(sub, 1, DEV_CONTEXT, k));
    return fn(sub);
  } finally {
    sodium.sodium_memzero(sub);
  }
}

/** MAC authenticating the dev flag of vault `vaultId` (key derived from the KEK, context "aivdev01"). */
export function devMac(kek: Kek, vaultId: string): string {
  return withDevKey(kek, (key) => {
    const mac = Buffer.alloc(sodium.crypto_auth_BYTES);
    sodium.crypto_auth(mac, devMessage(vaultId), key);
    return mac.toString('base64');
  });
}

export function verifyDevMac(kek: Kek, vaultId: string, macB64: string): boolean {
  const mac = Buffer.from(macB64, 'base64');
  if (mac.length !== sodium.crypto_auth_BYTES) return false;
  return withDevKey(kek, (key) => sodium.crypto_auth_verify(mac, devMessage(vaultId), key));
}

/**
 * The vault's envelope encryption (SPEC §4). KEK → per-secret random DEK → value.
 *
 *   value:      XChaCha20-Poly1305(DEK, nonce₁, plaintext, AAD = secretAad(version, record binding))
 *   wrapped DEK: XChaCha20-Poly1305(KEK, nonce₂, DEK,      AAD = dekAad(id, kekId))
 *
 * Both nonces are fresh random 24-byte values. AADs are a canonical, unambiguous encoding: a version
 * label followed by fields, each `u8 present` + `u32be length` + UTF-8 bytes. So a ciphertext (or a
 * wrapped DEK) moved into another record, or a record whose scope / pinned provider (and, from record
 * version 3, group attachments) was edited on disk, fails authentication.
 *
 * Secret AAD versions: v2 binds id, scope and pinned provider; v3 adds the attached groups (the groups
 * and workspaces a global/workspace secret resolves in), so attaching a secret to another group by
 * editing its file breaks decryption. New values are sealed as v3; v2 records stay readable and move to
 * v3 when their binding is re-sealed (attach/detach), their value is rotated, or at rotate-master.
 *
 * Failure rule: any authentication failure is `storage_corrupt` (the file was tampered with, corrupted
 * or moved) — EXCEPT an unwrap failure with a KEK whose id the record does not list, which is
 * `vault_unavailable` (wrong or stale master key; see `findWrap`). Messages never contain key or value bytes.
 */
import { AivaultError } from '../../core/errors.js';
import type { Scope } from '../../core/broker/types.js';
import type { Kek } from './secret-bytes.js';
import { SecretBytes } from './secret-bytes.js';
import { KEY_BYTES, NONCE_BYTES, TAG_BYTES, randomBytes, sodium } from './sodium.js';

/** The secret-record AAD version new values are sealed with. */
export const AAD_VERSION = 3;
/** Versions `openValue` accepts (older ones are migrated, see the module comment). */
const READABLE_AAD_VERSIONS: ReadonlySet<number> = new Set([2, 3]);
const SECRET_AAD_LABEL_V2 = 'aivault:secret:v2';
const SECRET_AAD_LABEL_V3 = 'aivault:secret:v3';
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

export interface GroupBinding {
  readonly workspaceId: string;
  readonly groupId: string;
}

/**
 * The AAD of a secret value at `version`. v3 appends the attachment count and each attachment's
 * workspace and group, sorted (their order on disk carries no meaning, so reordering is not tampering).
 */
export function secretAad(version: number, rec: RecordBinding): Buffer {
  const { id, scope, pinnedProvider } = rec;
  if (version === 2) {
    return encodeFields([
      SECRET_AAD_LABEL_V2,
      id,
      scope.kind,
      scope.workspaceId,
      scope.groupId,
      pinnedProvider,
    ]);
  }
  if (version !== 3) throw new AivaultError('internal', `no secret AAD version ${version}`);
  const groups = [...(rec.attachedGroups ?? [])]
    .map((g) => [g.workspaceId, g.groupId] as const)
    .sort(([aw, ag], [bw, bg]) => (aw === bw ? compare(ag, bg) : compare(aw, bw)));
  return encodeFields([
    SECRET_AAD_LABEL_V3,
    id,
    scope.kind,
    scope.workspaceId,
    scope.groupId,
    pinnedProvider,
    String(groups.length),
    ...groups.flat(),
  ]);
}

/** Code-unit order, independent of locale. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
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

/** What a secret value is bound to (everything in its AAD). */
export interface RecordBinding {
  readonly id: string;
  readonly scope: Scope;
  readonly pinnedProvider?: string | undefined;
  /** Bound from AAD v3 on; absent = none. */
  readonly attachedGroups?: readonly GroupBinding[] | undefined;
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
    const value = seal(dek, plaintext, secretAad(AAD_VERSION, rec));
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

function checkVersion(rec: SealedValue, file: string): void {
  if (!READABLE_AAD_VERSIONS.has(rec.aadVersion)) {
    throw new AivaultError('storage_corrupt', `${file}: unsupported aadVersion ${rec.aadVersion}`, {
      file,
      field: 'aadVersion',
    });
  }
}

/** Open the value with an unwrapped DEK, checking the record's AAD at its own version. */
function openWithDek(dek: Uint8Array, rec: RecordBinding & SealedValue, file: string): Buffer {
  checkVersion(rec, file);
  const plain = open(dek, rec.value, secretAad(rec.aadVersion, rec));
  if (!plain) {
    throw new AivaultError(
      'storage_corrupt',
      `${file}: the value of secret ${rec.id} failed authentication (ciphertext, scope, pinned provider or ` +
        'group attachments were tampered with, corrupted or moved)',
      { file, field: 'value' },
    );
  }
  return plain;
}

/** Decrypt a record's value. `file` only names the record in error messages. */
export function openValue(kek: Kek, rec: RecordBinding & SealedValue, file: string): SecretBytes {
  checkVersion(rec, file);
  const dek = unwrapDek(kek, rec, file);
  try {
    return new SecretBytes(openWithDek(dek, rec, file));
  } finally {
    sodium.sodium_memzero(dek);
  }
}

/**
 * Re-seal a record's value for a new binding (`next`: its attachments changed) at the current AAD
 * version, under the same DEK and with a fresh nonce; wraps are kept. The value is authenticated against
 * the record's CURRENT binding first, so re-binding never launders a record that was tampered with.
 */
export function rebindValue(
  kek: Kek,
  rec: RecordBinding & SealedValue,
  next: RecordBinding,
  file: string,
): SealedValue {
  const dek = unwrapDek(kek, rec, file);
  try {
    const plain = openWithDek(dek, rec, file);
    try {
      const value = seal(dek, plain, secretAad(AAD_VERSION, next));
      return { aadVersion: AAD_VERSION, value, wraps: rec.wraps };
    } finally {
      sodium.sodium_memzero(plain);
    }
  } finally {
    sodium.sodium_memzero(dek);
  }
}

/**
 * Add a wrap for `newKek` (keeping existing wraps), for master-key rotation. A record below the current
 * AAD version is migrated in the same write (same DEK, so the old wrap stays valid if the rotation stops).
 */
export function addWrap(
  oldKek: Kek,
  newKek: Kek,
  rec: RecordBinding & SealedValue,
  file: string,
): SealedValue {
  const current = rec.aadVersion === AAD_VERSION ? rec : { ...rec, ...rebindValue(oldKek, rec, rec, file) };
  const dek = unwrapDek(oldKek, current, file);
  try {
    const others = current.wraps.filter((w) => w.kekId !== newKek.kekId);
    return {
      aadVersion: current.aadVersion,
      value: current.value,
      wraps: [...others, wrapDek(newKek, rec.id, dek)],
    };
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

/**
 * One interface for every source of the KEK (SPEC §4). A provider knows how to create key material for a
 * new vault, produce the KEK of an existing one, and take part in master-key rotation in two phases:
 * `stage` (new key stored beside the old one, not yet live) before vault.json is switched, `commit`
 * (new key becomes the only one) after. `load` finishes an interrupted commit when it finds the staged
 * key matches the kekId vault.json names.
 */
import type { Config } from '../../../core/config/env.js';
import { AivaultError } from '../../../core/errors.js';
import type { ProviderKind, ProviderSection } from '../records.js';
import { Kek } from '../secret-bytes.js';
import { KEY_BYTES, randomBytes } from '../sodium.js';

export type ProviderName = ProviderKind | 'macos-keychain';

export interface ProviderInitInput {
  readonly filePath?: string | undefined;
  readonly envVar?: string | undefined;
  readonly passphrase?: string | undefined;
  readonly keychainService?: string | undefined;
  readonly keychainAccount?: string | undefined;
  /** Argon2id cost override (tests); stored in vault.json. */
  readonly kdf?: { readonly memoryKiB?: number; readonly timeCost?: number } | undefined;
}

export interface ProviderLoadInput {
  readonly vaultId: string;
  readonly expectedKekId: string;
  readonly passphrase?: string | undefined;
  /** vault.json's policySeal flag (the passphrase check record binds it). */
  readonly policySeal?: boolean | undefined;
}

export interface RotationInput {
  readonly vaultId: string;
  readonly newKey?: string | undefined;
  readonly newPassphrase?: string | undefined;
}

export interface ProviderKey<S extends ProviderSection = ProviderSection> {
  readonly kek: Kek;
  readonly section: S;
  /** Something the user must do (e.g. update an env var). */
  readonly notice?: string;
}

export interface KeyProvider<S extends ProviderSection = ProviderSection> {
  readonly kind: S['kind'];
  /** True when `load` needs a passphrase (the vault starts locked). */
  readonly needsPassphrase: boolean;
  init(config: Config, input: ProviderInitInput, vaultId: string): Promise<ProviderKey<S>>;
  load(config: Config, section: S, input: ProviderLoadInput): Promise<Kek>;
  prepareRotation(config: Config, section: S, input: RotationInput): Promise<ProviderKey<S>>;
  stage(config: Config, section: S, kek: Kek): Promise<void>;
  commit(config: Config, section: S, kek: Kek): Promise<void>;
}

/** Strict base64 → 32-byte key; the error never echoes the input. */
export function decodeKey(b64: string, source: string): Buffer {
  const trimmed = b64.trim();
  const buf = Buffer.from(trimmed, 'base64');
  if (buf.length !== KEY_BYTES || buf.toString('base64') !== trimmed) {
    buf.fill(0);
    throw new AivaultError('vault_unavailable', `${source} must hold a base64-encoded 32-byte key`);
  }
  return buf;
}

export function kekFromBase64(b64: string, source: string): Kek {
  return Kek.fromBytes(decodeKey(b64, source));
}

export function randomKek(): { kek: Kek; b64: string } {
  const raw = randomBytes(KEY_BYTES);
  const b64 = raw.toString('base64');
  return { kek: Kek.fromBytes(raw), b64 };
}

/** Key material as base64 (for writing to a key file / keychain). Zero-copy is impossible for strings. */
export function kekToBase64(kek: Kek): string {
  return kek.use((k) => k.toString('base64'));
}

export function mismatch(source: string, hint: string): AivaultError {
  return new AivaultError('vault_unavailable', `${source} does not hold this vault's master key; ${hint}`);
}

/**
 * `passphrase` provider: KEK = Argon2id(passphrase, random 16-byte salt) with raw 32-byte output.
 * vault.json stores the salt, the cost parameters and a KEK check record (an AEAD blob sealed with the
 * KEK and bound to the vault id), which proves a passphrase without storing the key. The vault starts
 * locked; `unlock(passphrase)` derives and checks the KEK.
 */
import { AivaultError } from '../../../core/errors.js';
import { sealCheck, verifyCheck } from '../aead.js';
import type { KdfParams, ProviderSection } from '../records.js';
import { Kek } from '../secret-bytes.js';
import { randomBytes } from '../sodium.js';
import type { KeyProvider, ProviderInitInput } from './provider.js';

type PassphraseSection = Extract<ProviderSection, { kind: 'passphrase' }>;

export const DEFAULT_KDF = { memoryKiB: 64 * 1024, timeCost: 3, parallelism: 1 } as const;

function checkPassphrase(passphrase: string | undefined, flag: string): string {
  if (passphrase === undefined || passphrase.length === 0) {
    throw new AivaultError('usage', `the passphrase provider needs ${flag}`);
  }
  return passphrase;
}

export async function deriveKek(passphrase: string, kdf: KdfParams): Promise<Kek> {
  // Loaded on first use: only passphrase vaults need the native Argon2 addon, so every other command
  // starts without loading it.
  const mod = await import('argon2');
  const argon2 = (mod as { default?: typeof mod }).default ?? mod; // CommonJS package seen from ESM
  const raw = await argon2.hash(passphrase, {
    type: argon2.argon2id,
    raw: true,
    salt: Buffer.from(kdf.salt, 'base64'),
    memoryCost: kdf.memoryKiB,
    timeCost: kdf.timeCost,
    parallelism: kdf.parallelism,
    hashLength: 32,
  });
  return Kek.fromBytes(raw);
}

async function fresh(
  passphrase: string,
  vaultId: string,
  cost: ProviderInitInput['kdf'],
): Promise<{ kek: Kek; section: PassphraseSection }> {
  const kdf: KdfParams = {
    alg: 'argon2id',
    salt: randomBytes(16).toString('base64'),
    memoryKiB: Math.max(8192, cost?.memoryKiB ?? DEFAULT_KDF.memoryKiB),
    timeCost: Math.max(1, cost?.timeCost ?? DEFAULT_KDF.timeCost),
    parallelism: DEFAULT_KDF.parallelism,
  };
  const kek = await deriveKek(passphrase, kdf);
  // New check records always bind the policy seal: init and rotate-master seal the policy files.
  return { kek, section: { kind: 'passphrase', kdf, check: sealCheck(kek, vaultId, true) } };
}

export const passphraseProvider: KeyProvider<PassphraseSection> = {
  kind: 'passphrase',
  needsPassphrase: true,

  async init(_config, input, vaultId) {
    return fresh(checkPassphrase(input.passphrase, '--passphrase'), vaultId, input.kdf);
  },

  async load(_config, section, input) {
    if (input.passphrase === undefined) {
      throw new AivaultError(
        'vault_unavailable',
        'the vault is locked; run `aivault unlock` with the passphrase',
      );
    }
    const kek = await deriveKek(input.passphrase, section.kdf);
    const sealed = input.policySeal === true;
    if (!verifyCheck(kek, input.vaultId, section.check, sealed) || kek.kekId !== input.expectedKekId) {
      // The right passphrase with the flag flipped: vault.json was edited (sealing switched on or off).
      const flipped = verifyCheck(kek, input.vaultId, section.check, !sealed);
      kek.dispose();
      if (flipped) {
        throw new AivaultError(
          'storage_corrupt',
          'vault.json: the policySeal flag does not match the passphrase check record (vault.json was edited)',
          { field: 'policySeal' },
        );
      }
      throw new AivaultError('vault_unavailable', 'wrong passphrase');
    }
    return kek;
  },

  async prepareRotation(_config, section, input) {
    const passphrase = checkPassphrase(input.newPassphrase, '--new-passphrase for rotate-master');
    return fresh(passphrase, input.vaultId, {
      memoryKiB: section.kdf.memoryKiB,
      timeCost: section.kdf.timeCost,
    });
  },

  async stage() {},
  async commit() {},
};

/**
 * `env` provider: a base64 32-byte key in AIVAULT_KEY or a named variable (read via config.readVar; the
 * Config snapshot is the only reader of process.env). Nothing is stored; rotation needs the new key
 * supplied and the user must update the variable afterwards.
 */
import { AivaultError } from '../../../core/errors.js';
import type { ProviderSection } from '../records.js';
import type { KeyProvider } from './provider.js';
import { kekFromBase64, mismatch } from './provider.js';

type EnvSection = Extract<ProviderSection, { kind: 'env' }>;

export const DEFAULT_KEY_VAR = 'AIVAULT_KEY';

function readKey(config: { readVar(name: string): string | undefined }, envVar: string) {
  const value = config.readVar(envVar);
  if (value === undefined || value === '') {
    throw new AivaultError(
      'vault_unavailable',
      `${envVar} is not set; the env provider needs a base64-encoded 32-byte key in it`,
    );
  }
  return kekFromBase64(value, envVar);
}

export const envProvider: KeyProvider<EnvSection> = {
  kind: 'env',
  needsPassphrase: false,

  async init(config, input) {
    const envVar = input.envVar ?? DEFAULT_KEY_VAR;
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(envVar)) {
      throw new AivaultError('usage', `--env-var ${JSON.stringify(envVar)} is not a valid variable name`);
    }
    return { kek: readKey(config, envVar), section: { kind: 'env', envVar } };
  },

  async load(config, section, input) {
    const kek = readKey(config, section.envVar);
    if (kek.kekId !== input.expectedKekId) {
      kek.dispose();
      throw mismatch(section.envVar, 'if you ran rotate-master, set it to the new key');
    }
    return kek;
  },

  async prepareRotation(_config, section, input) {
    if (input.newKey === undefined) {
      throw new AivaultError(
        'usage',
        'rotate-master with the env provider needs --new-key <base64 32-byte key>',
      );
    }
    return {
      kek: kekFromBase64(input.newKey, '--new-key'),
      section,
      notice: `update ${section.envVar} to the new key before the next run`,
    };
  },

  async stage() {},
  async commit() {},
};

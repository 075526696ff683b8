/**
 * `keychain` provider (alias `macos-keychain`): the base64 KEK lives in the OS keychain via keytar
 * (macOS Keychain, Secret Service/libsecret on Linux). keytar is an optional dependency loaded with a
 * dynamic import; if it cannot be loaded this provider fails with a clear message. Rotation stages the new
 * key under `<account>.next` and moves it to `<account>` after vault.json has switched.
 */
import { AivaultError } from '../../../core/errors.js';
import type { ProviderSection } from '../records.js';
import type { Kek } from '../secret-bytes.js';
import type { KeyProvider } from './provider.js';
import { kekFromBase64, kekToBase64, mismatch, randomKek } from './provider.js';

type KeychainSection = Extract<ProviderSection, { kind: 'keychain' }>;

export const DEFAULT_KEYCHAIN_SERVICE = 'aivault';
export const DEFAULT_KEYCHAIN_ACCOUNT = 'kek';

interface Keytar {
  getPassword(service: string, account: string): Promise<string | null>;
  setPassword(service: string, account: string, password: string): Promise<void>;
  deletePassword(service: string, account: string): Promise<boolean>;
}

let keytarPromise: Promise<Keytar> | undefined;

/** Load keytar once. Rejects with a `vault_unavailable` explaining how to get it. */
export function loadKeytar(): Promise<Keytar> {
  keytarPromise ??= (async () => {
    try {
      const name = 'keytar';
      const mod = (await import(name)) as { default?: Keytar } & Partial<Keytar>;
      const k = (mod.default ?? mod) as Keytar;
      if (typeof k.getPassword !== 'function') throw new Error('unexpected module shape');
      return k;
    } catch (err) {
      keytarPromise = undefined;
      throw new AivaultError(
        'vault_unavailable',
        'keychain provider needs keytar (libsecret on Linux): install it with `npm install keytar` ' +
          `(Linux: apt-get install libsecret-1-dev first), or use --provider file|env|passphrase ` +
          `[${(err as Error).message.split('\n')[0] ?? ''}]`,
      );
    }
  })();
  return keytarPromise;
}

async function call<T>(what: string, fn: (k: Keytar) => Promise<T>): Promise<T> {
  const k = await loadKeytar();
  try {
    return await fn(k);
  } catch (err) {
    throw new AivaultError(
      'vault_unavailable',
      `keychain ${what} failed (is a Secret Service / Keychain running and unlocked?): ` +
        `${(err as Error).message.split('\n')[0] ?? 'error'}`,
    );
  }
}

async function readEntry(service: string, account: string): Promise<Kek | undefined> {
  const value = await call('read', (k) => k.getPassword(service, account));
  if (value === null) return undefined;
  return kekFromBase64(value, `keychain entry ${service}/${account}`);
}

export const keychainProvider: KeyProvider<KeychainSection> = {
  kind: 'keychain',
  needsPassphrase: false,

  async init(_config, input) {
    const service = input.keychainService ?? DEFAULT_KEYCHAIN_SERVICE;
    const account = input.keychainAccount ?? DEFAULT_KEYCHAIN_ACCOUNT;
    const section: KeychainSection = { kind: 'keychain', service, account };
    // An existing valid entry is reused (another vault may depend on it); otherwise a random key is stored.
    const existing = await readEntry(service, account).catch(() => undefined);
    if (existing) return { kek: existing, section };
    const { kek, b64 } = randomKek();
    await call('write', (k) => k.setPassword(service, account, b64));
    return { kek, section };
  },

  async load(_config, section, input) {
    const label = `keychain entry ${section.service}/${section.account}`;
    const kek = await readEntry(section.service, section.account);
    if (kek?.kekId === input.expectedKekId) return kek;
    kek?.dispose();
    const staged = await readEntry(section.service, `${section.account}.next`).catch(() => undefined);
    if (staged && staged.kekId === input.expectedKekId) {
      await this.commit(_config, section, staged);
      return staged;
    }
    staged?.dispose();
    if (!kek) throw new AivaultError('vault_unavailable', `${label} is missing`);
    throw mismatch(label, 'restore the matching keychain entry');
  },

  async prepareRotation(_config, section, input) {
    const kek = input.newKey !== undefined ? kekFromBase64(input.newKey, '--new-key') : randomKek().kek;
    return { kek, section };
  },

  async stage(_config, section, kek) {
    await call('write', (k) => k.setPassword(section.service, `${section.account}.next`, kekToBase64(kek)));
  },

  async commit(_config, section, kek) {
    await call('write', (k) => k.setPassword(section.service, section.account, kekToBase64(kek)));
    await call('delete', (k) => k.deletePassword(section.service, `${section.account}.next`));
  },
};

/** Remove this vault's keychain entries (tests / uninstall). */
export async function deleteKeychainEntries(service: string, account: string): Promise<void> {
  await call('delete', (k) => k.deletePassword(service, account));
  await call('delete', (k) => k.deletePassword(service, `${account}.next`));
}

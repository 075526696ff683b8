/** Provider registry: name (including the `macos-keychain` alias) → KeyProvider. */
import { AivaultError } from '../../../core/errors.js';
import type { ProviderKind, ProviderSection } from '../records.js';
import { envProvider } from './env.js';
import { fileProvider } from './file.js';
import { keychainProvider } from './keychain.js';
import { passphraseProvider } from './passphrase.js';
import type { KeyProvider, ProviderName } from './provider.js';

export type { KeyProvider, ProviderName, ProviderInitInput, RotationInput } from './provider.js';

const PROVIDERS: Readonly<Record<ProviderKind, KeyProvider>> = Object.freeze({
  file: fileProvider as unknown as KeyProvider,
  env: envProvider as unknown as KeyProvider,
  passphrase: passphraseProvider as unknown as KeyProvider,
  keychain: keychainProvider as unknown as KeyProvider,
});

export function providerKind(name: string): ProviderKind {
  if (name === 'macos-keychain') return 'keychain';
  if (Object.hasOwn(PROVIDERS, name)) return name as ProviderKind;
  throw new AivaultError(
    'usage',
    `unknown key provider ${JSON.stringify(name)} (file, env, passphrase, keychain, macos-keychain)`,
  );
}

export function getProvider(kind: ProviderKind | ProviderName): KeyProvider<ProviderSection> {
  return PROVIDERS[providerKind(kind)];
}

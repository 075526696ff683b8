// Runs the KeyProvider contract against every provider, the keychain one against a REAL Secret Service.
// `npm test` wraps vitest in `dbus-run-session -- bash scripts/keyring-session.sh …`; without a reachable
// Secret Service the keychain suite FAILS with the provider's message. Set AIVAULT_TEST_NO_KEYRING=1 to
// skip it explicitly outside CI (the skip is reported by vitest, never silent; under CI it fails).
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { describe } from 'vitest';
import { Vault, deleteKeychainEntries } from '../../src/stores/vault/index.js';
import { FAST_KDF, configFor, tempDir } from '../unit/vault/fixtures/helpers.js';
import { runKeyProviderSuite } from './key-provider.case.js';
import { skipOutsideCi } from '../support/ci.js';

const key = () => randomBytes(32).toString('base64');

runKeyProviderSuite('file', async () => {
  const dir = tempDir();
  const config = configFor(dir);
  let oldKey = '';
  return {
    init: async () => {
      const v = await Vault.init(config, { provider: 'file' });
      return v;
    },
    reopen: () => Vault.open(config),
    rotateInput: () => {
      oldKey = readFileSync(config.defaultKeyFile, 'utf8');
      return { newKey: key() };
    },
    reopenWithOldKey: async () => {
      writeFileSync(config.defaultKeyFile, oldKey);
      return Vault.open(config);
    },
  };
});

runKeyProviderSuite('env', async () => {
  const dir = tempDir();
  let current = key();
  let old = current;
  let next = '';
  return {
    init: () => Vault.init(configFor(dir, { AIVAULT_KEY: current }), { provider: 'env' }),
    reopen: () => Vault.open(configFor(dir, { AIVAULT_KEY: current })),
    rotateInput: () => {
      next = key();
      return { newKey: next };
    },
    afterRotate: () => {
      old = current;
      current = next;
    },
    reopenWithOldKey: () => Vault.open(configFor(dir, { AIVAULT_KEY: old })),
  };
});

runKeyProviderSuite('env (named variable)', async () => {
  const dir = tempDir();
  let current = key();
  let next = '';
  return {
    init: () => Vault.init(configFor(dir, { MY_KEK: current }), { provider: 'env', envVar: 'MY_KEK' }),
    reopen: () => Vault.open(configFor(dir, { MY_KEK: current })),
    rotateInput: () => {
      next = key();
      return { newKey: next };
    },
    afterRotate: () => {
      current = next;
    },
  };
});

runKeyProviderSuite('passphrase', async () => {
  const dir = tempDir();
  const config = configFor(dir);
  let pass = 'correct horse battery';
  let old = pass;
  return {
    init: () => Vault.init(config, { provider: 'passphrase', passphrase: pass, kdf: FAST_KDF }),
    reopen: () => Vault.open(config, { passphrase: pass }),
    rotateInput: () => {
      old = pass;
      pass = 'a brand new passphrase';
      return { newPassphrase: pass };
    },
    reopenWithOldKey: () => Vault.open(config, { passphrase: old }),
  };
});

const skipKeyring = skipOutsideCi(
  process.env.AIVAULT_TEST_NO_KEYRING !== '1',
  'keychain provider (AIVAULT_TEST_NO_KEYRING=1 is set)',
);
describe.skipIf(skipKeyring)(
  'keychain provider against a real Secret Service (AIVAULT_TEST_NO_KEYRING=1 skips)',
  () => {
    for (const alias of ['keychain', 'macos-keychain'] as const) {
      runKeyProviderSuite(alias, async () => {
        const dir = tempDir();
        const config = configFor(dir);
        const service = `aivault-test-${randomBytes(6).toString('hex')}`;
        return {
          init: () =>
            Vault.init(config, { provider: alias, keychainService: service, keychainAccount: 'kek' }),
          reopen: () => Vault.open(config),
          rotateInput: () => ({}),
          cleanup: () => deleteKeychainEntries(service, 'kek').catch(() => undefined),
        };
      });
    }
  },
);

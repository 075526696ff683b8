// The policy seal (src/stores/vault/policy-seal.ts): canonical form, key ids, rotation, and the vault.json flag
// bound into the passphrase check record.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Vault } from '../../../src/stores/vault/index.js';
import {
  canonicalJson,
  derivePolicySealKey,
  policySealState,
  readPolicyFile,
  sealDocument,
  verifyDocument,
  writePolicyFile,
} from '../../../src/stores/vault/policy-seal.js';
import { Kek } from '../../../src/stores/vault/secret-bytes.js';
import { randomBytes } from '../../../src/stores/vault/sodium.js';
import { readBrokerFile, readCapabilitiesFile } from '../../../src/stores/catalog/index.js';
import { mintProxyToken, readTokensFile } from '../../../src/stores/tokens/tokens.js';
import { FAST_KDF, configFor, tempDir } from './fixtures/helpers.js';

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
const writeJson = (path: string, v: unknown) => writeFileSync(path, JSON.stringify(v, null, 2));

async function passphraseVault(opts: { legacy?: boolean } = {}) {
  const dir = tempDir('aivault-seal-');
  const config = configFor(dir);
  const vault = await Vault.init(config, { provider: 'passphrase', passphrase: 'pw-one', kdf: FAST_KDF });
  if (opts.legacy) {
    vault.close();
    await makeLegacy(dir);
  }
  return { dir, config, vault };
}

/**
 * Turn a freshly sealed vault into one made before the seal existed: no flag, a check record with the old
 * AAD, no seal fields. Done with the KEK the way an old aivault did it (sealCheck without the flag).
 */
async function makeLegacy(dir: string): Promise<void> {
  const { sealCheck } = await import('../../../src/stores/vault/aead.js');
  const { deriveKek } = await import('../../../src/stores/vault/providers/passphrase.js');
  const meta = readJson(join(dir, 'vault.json')) as {
    vaultId: string;
    provider: { kdf: Parameters<typeof deriveKek>[1] };
    policySeal?: boolean;
  };
  const kek = await deriveKek('pw-one', meta.provider.kdf);
  const { policySeal: _flag, ...rest } = meta;
  writeJson(join(dir, 'vault.json'), {
    ...rest,
    provider: { ...meta.provider, check: sealCheck(kek, meta.vaultId) },
  });
  kek.dispose();
  for (const f of ['broker', 'capabilities', 'tokens']) {
    const { seal: _seal, ...doc } = readJson(join(dir, `${f}.json`));
    writeJson(join(dir, `${f}.json`), doc);
  }
}

describe('canonical form', () => {
  it('sorts keys at every depth, drops undefined members, keeps array order', () => {
    expect(canonicalJson({ b: 1, a: [{ z: true, y: null }, 'x'], c: undefined })).toBe(
      '{"a":[{"y":null,"z":true},"x"],"b":1}',
    );
  });

  it('a re-ordered or re-indented file still verifies; any value change does not', () => {
    const kek = Kek.fromBytes(randomBytes(32));
    const key = derivePolicySealKey(kek, 'v1');
    const sealed = sealDocument({ version: 1, tokens: [{ id: 'a', kind: 'proxy' }] }, 'tokens', [key]);
    const reordered = JSON.parse(
      JSON.stringify({ seal: sealed.seal, tokens: [{ kind: 'proxy', id: 'a' }], version: 1 }, null, 4),
    ) as unknown;
    expect(verifyDocument(reordered, 'tokens', key, 'tokens.json')).toEqual({
      version: 1,
      tokens: [{ id: 'a', kind: 'proxy' }],
    });
    const edited = { ...sealed, tokens: [{ id: 'b', kind: 'proxy' }] };
    expect(() => verifyDocument(edited, 'tokens', key, 'tokens.json')).toThrow(/does not match/);
    kek.dispose();
  });

  it('binds the file name and the vault id: a sealed file cannot be moved', () => {
    const kek = Kek.fromBytes(randomBytes(32));
    const doc = sealDocument({ version: 1, bindings: [] }, 'capabilities', [derivePolicySealKey(kek, 'v1')]);
    expect(() => verifyDocument(doc, 'broker', derivePolicySealKey(kek, 'v1'), 'b')).toThrow();
    expect(() => verifyDocument(doc, 'capabilities', derivePolicySealKey(kek, 'v2'), 'c')).toThrow();
    kek.dispose();
  });
});

describe('key id and rotation', () => {
  it('tags each MAC with the kekId; a seal without the live kid is storage_corrupt', () => {
    const a = Kek.fromBytes(randomBytes(32));
    const b = Kek.fromBytes(randomBytes(32));
    const ka = derivePolicySealKey(a, 'v');
    const kb = derivePolicySealKey(b, 'v');
    expect(ka.kid).toBe(a.kekId);
    const both = sealDocument({ version: 1, tokens: [] }, 'tokens', [ka, kb]);
    expect(both.seal.macs.map((m) => m.kid)).toEqual([a.kekId, b.kekId]);
    expect(() => verifyDocument(both, 'tokens', ka, 'f')).not.toThrow();
    expect(() => verifyDocument(both, 'tokens', kb, 'f')).not.toThrow();
    const onlyA = sealDocument({ version: 1, tokens: [] }, 'tokens', [ka]);
    expect(() => verifyDocument(onlyA, 'tokens', kb, 'f')).toThrow(/no MAC under the current master key/);
    a.dispose();
    b.dispose();
  });

  it('rotate-master re-seals under the new key and drops the old MAC', async () => {
    const { dir, vault } = await passphraseVault();
    const before = readJson(join(dir, 'broker.json')).seal as { macs: { kid: string }[] };
    expect(before.macs).toHaveLength(1);
    await vault.rotateMaster({ newPassphrase: 'pw-one' }); // same passphrase: fresh salt, new KEK
    const after = readJson(join(dir, 'broker.json')).seal as { macs: { kid: string }[] };
    expect(after.macs).toHaveLength(1);
    expect(after.macs[0]?.kid).toBe(vault.meta.kekId);
    expect(after.macs[0]?.kid).not.toBe(before.macs[0]?.kid);
    await expect(readBrokerFile(join(dir, 'broker.json'))).resolves.toMatchObject({ version: 1 });
    vault.close();
  });
});

describe('vault seal state', () => {
  it('a new passphrase vault is sealed, with all three files sealed', async () => {
    const { dir, vault } = await passphraseVault();
    expect(readJson(join(dir, 'vault.json')).policySeal).toBe(true);
    expect((await vault.status()).policySealed).toBe(true);
    for (const f of ['broker', 'capabilities', 'tokens']) {
      expect(readJson(join(dir, `${f}.json`)).seal).toMatchObject({ v: 1 });
    }
    vault.close();
  });

  it('a file-key vault is never sealed', async () => {
    const dir = tempDir('aivault-seal-');
    const vault = await Vault.init(configFor(dir), { provider: 'file' });
    expect((await vault.status()).policySealed).toBe(false);
    await expect(policySealState(dir)).resolves.toEqual({ sealed: false });
    vault.close();
  });

  it('a locked sealed vault cannot read its policy; the unlocked vault reads and writes sealed', async () => {
    const { dir, config, vault } = await passphraseVault();
    vault.close();
    await expect(readBrokerFile(join(dir, 'broker.json'))).rejects.toMatchObject({
      code: 'vault_unavailable',
    });
    const open = await Vault.open(config, { passphrase: 'pw-one' });
    await mintProxyToken(dir, { capabilities: ['openai/*'] });
    expect((await readTokensFile(join(dir, 'tokens.json'))).tokens).toHaveLength(1);
    // Hand edit (the attacker): widen the token's scope → refused.
    const raw = readJson(join(dir, 'tokens.json')) as { tokens: { capabilities: string[] }[] };
    raw.tokens[0]!.capabilities = ['*'];
    writeJson(join(dir, 'tokens.json'), raw);
    await expect(readTokensFile(join(dir, 'tokens.json'))).rejects.toMatchObject({
      code: 'storage_corrupt',
      details: { file: join(dir, 'tokens.json') },
    });
    open.close();
  });

  it('a deleted policy file on a sealed vault is storage_corrupt, not an empty policy', async () => {
    const { dir, vault } = await passphraseVault();
    const { rmSync } = await import('node:fs');
    rmSync(join(dir, 'capabilities.json'));
    await expect(readCapabilitiesFile(join(dir, 'capabilities.json'))).rejects.toMatchObject({
      code: 'storage_corrupt',
    });
    vault.close();
  });

  it('flipping vault.json policySeal to false: unlock is refused (storage_corrupt)', async () => {
    const { dir, config, vault } = await passphraseVault();
    vault.close();
    const meta = readJson(join(dir, 'vault.json'));
    writeJson(join(dir, 'vault.json'), { ...meta, policySeal: false });
    await expect(Vault.open(config, { passphrase: 'pw-one' })).rejects.toMatchObject({
      code: 'storage_corrupt',
    });
    const { policySeal: _f, ...noFlag } = meta;
    writeJson(join(dir, 'vault.json'), noFlag);
    await expect(Vault.open(config, { passphrase: 'pw-one' })).rejects.toMatchObject({
      code: 'storage_corrupt',
    });
  });

  it('flipping the flag while a process holds the key: its next policy read is storage_corrupt', async () => {
    const { dir, vault } = await passphraseVault();
    const meta = readJson(join(dir, 'vault.json'));
    writeJson(join(dir, 'vault.json'), { ...meta, policySeal: false });
    await expect(readBrokerFile(join(dir, 'broker.json'))).rejects.toMatchObject({
      code: 'storage_corrupt',
    });
    vault.close();
  });

  it('a legacy passphrase vault works unsealed; resealPolicy seals it as it is', async () => {
    const { dir, config } = await passphraseVault({ legacy: true });
    const v = await Vault.open(config, { passphrase: 'pw-one' });
    expect((await v.status()).policySealed).toBe(false);
    await writePolicyFile(join(dir, 'tokens.json'), 'tokens', { version: 1, tokens: [] });
    expect(readJson(join(dir, 'tokens.json')).seal).toBeUndefined();
    const r = await v.resealPolicy();
    expect(r).toMatchObject({ policySealed: true, newlySealed: true });
    expect((await v.status()).policySealed).toBe(true);
    v.close();
    // The new check record binds the flag: the passphrase still unlocks, and a flipped flag does not.
    const again = await Vault.open(config, { passphrase: 'pw-one' });
    await expect(readTokensFile(join(dir, 'tokens.json'))).resolves.toMatchObject({ tokens: [] });
    again.close();
    const meta = readJson(join(dir, 'vault.json'));
    writeJson(join(dir, 'vault.json'), { ...meta, policySeal: false });
    await expect(Vault.open(config, { passphrase: 'pw-one' })).rejects.toMatchObject({
      code: 'storage_corrupt',
    });
  });

  it('rotate-master seals a legacy vault', async () => {
    const { dir, config } = await passphraseVault({ legacy: true });
    const v = await Vault.open(config, { passphrase: 'pw-one' });
    await v.rotateMaster({ newPassphrase: 'pw-two' });
    expect(readJson(join(dir, 'vault.json')).policySeal).toBe(true);
    await expect(readPolicyFile(join(dir, 'broker.json'), 'broker')).resolves.toMatchObject({ version: 1 });
    v.close();
  });

  it('resealPolicy refuses to bless a tampered sealed file', async () => {
    const { dir, vault } = await passphraseVault();
    const raw = readJson(join(dir, 'broker.json'));
    writeJson(join(dir, 'broker.json'), { ...raw, credentials: [{ id: 'x' }] });
    await expect(vault.resealPolicy()).rejects.toMatchObject({ code: 'storage_corrupt' });
    vault.close();
  });
});

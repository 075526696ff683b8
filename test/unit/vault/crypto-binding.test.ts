// Tamper resistance: ciphertexts, wrapped DEKs and bound metadata cannot be moved or edited.
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Vault, decryptRecord, readSecretRecord } from '../../../src/stores/vault/index.js';
import { configFor, tempDir } from './fixtures/helpers.js';

async function twoSecrets() {
  const dir = tempDir();
  const v = await Vault.init(configFor(dir), { provider: 'file' });
  const a = await v.createSecret({ name: 'A', value: 'alpha-value', scope: { kind: 'global' } });
  const b = await v.createSecret({ name: 'B', value: 'bravo-value', scope: { kind: 'global' } });
  const file = (id: string) => `${v.paths.secretsDir}/${id}.json`;
  const read = (id: string) => JSON.parse(readFileSync(file(id), 'utf8')) as Record<string, unknown>;
  const write = (id: string, rec: unknown) => writeFileSync(file(id), JSON.stringify(rec));
  return { v, a, b, read, write };
}

describe('AEAD binding', () => {
  it('moving a ciphertext into another record fails (storage_corrupt)', async () => {
    const { v, a, b, read, write } = await twoSecrets();
    write(b.id, { ...read(b.id), value: read(a.id).value });
    await expect(v.decryptSecret(b.id)).rejects.toMatchObject({ code: 'storage_corrupt' });
    expect((await v.decryptSecret(a.id)).reveal()).toBe('alpha-value');
  });

  it('moving a wrapped DEK into another record fails', async () => {
    const { v, a, b, read, write } = await twoSecrets();
    write(b.id, { ...read(b.id), wraps: read(a.id).wraps });
    await expect(v.decryptSecret(b.id)).rejects.toMatchObject({ code: 'storage_corrupt' });
  });

  it('moving a whole record to another id fails', async () => {
    const { v, a, b, read, write } = await twoSecrets();
    write(b.id, { ...read(a.id), id: b.id });
    await expect(v.decryptSecret(b.id)).rejects.toMatchObject({ code: 'storage_corrupt' });
  });

  it.each(['value', 'wraps'] as const)('flipping one byte of %s fails', async (field) => {
    const { v, a, read, write } = await twoSecrets();
    const rec = read(a.id);
    const blob = (field === 'value' ? rec.value : (rec.wraps as unknown[])[0]) as { ciphertext: string };
    const bytes = Buffer.from(blob.ciphertext, 'base64');
    bytes[3] = (bytes[3] ?? 0) ^ 1;
    blob.ciphertext = bytes.toString('base64');
    write(a.id, rec);
    await expect(v.decryptSecret(a.id)).rejects.toMatchObject({ code: 'storage_corrupt' });
  });

  it('editing the scope or pinned provider on disk breaks decryption', async () => {
    const { v, a, read, write } = await twoSecrets();
    write(a.id, { ...read(a.id), scope: { kind: 'workspace', workspaceId: 'w' } });
    await expect(v.decryptSecret(a.id)).rejects.toMatchObject({ code: 'storage_corrupt' });
    const dir = tempDir();
    const v2 = await Vault.init(configFor(dir), { provider: 'file' });
    const p = await v2.createSecret({
      name: 'OPENAI_API_KEY',
      value: 'x',
      scope: { kind: 'global' },
      pinnedProvider: 'openai',
    });
    const f = `${v2.paths.secretsDir}/${p.id}.json`;
    writeFileSync(f, JSON.stringify({ ...JSON.parse(readFileSync(f, 'utf8')), pinnedProvider: 'evil' }));
    await expect(v2.decryptSecret(p.id)).rejects.toMatchObject({ code: 'storage_corrupt' });
  });

  it('a ciphertext from another vault does not decrypt (different KEK → vault_unavailable)', async () => {
    const { a, v } = await twoSecrets();
    const other = await Vault.init(configFor(tempDir()), { provider: 'file' });
    const rec = await readSecretRecord(v.paths, a.id);
    // decryptRecord with the wrong vault's KEK: no wrap with that kekId
    const { loadKek, readVaultMeta } = await import('../../../src/stores/vault/index.js');
    const otherKek = await loadKek(other.config, await readVaultMeta(other.paths));
    expect(() => decryptRecord(otherKek, rec)).toThrow(
      expect.objectContaining({ code: 'vault_unavailable' }),
    );
  });
});

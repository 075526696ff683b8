// Group attachments are bound into a secret value's AAD (record version 3): editing a record file to make a
// secret resolve in another group or workspace breaks decryption (storage_corrupt). Version-2 records
// (written before attachments were bound) stay readable and move to v3 on attach/detach, rotation or
// rotate-master. Real vaults on disk, real libsodium.
import { readFileSync, writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { loadKek, readVaultMeta, Vault, type SecretMeta } from '../../../src/stores/vault/index.js';
import { AAD_VERSION, seal, secretAad, wrapDek } from '../../../src/stores/vault/aead.js';
import { KEY_BYTES, randomBytes } from '../../../src/stores/vault/sodium.js';
import { configFor, FAST_KDF, tempDir } from './fixtures/helpers.js';

type Rec = Record<string, unknown> & { attachedGroups: { workspaceId: string; groupId: string }[] };

async function vaultWith(value: string) {
  const v = await Vault.init(configFor(tempDir()), { provider: 'file' });
  const s = await v.createSecret({ name: 'TOKEN', value, scope: { kind: 'global' } });
  const file = `${v.paths.secretsDir}/${s.id}.json`;
  const read = (): Rec => JSON.parse(readFileSync(file, 'utf8')) as Rec;
  const write = (rec: unknown): void => writeFileSync(file, JSON.stringify(rec));
  return { v, s, read, write };
}

/** Rewrite a record as an AAD-v2 record (as written before v3): fresh DEK, v2 AAD, attachments unbound. */
async function downgradeToV2(v: Vault, s: SecretMeta, value: string, groups: Rec['attachedGroups']) {
  const file = `${v.paths.secretsDir}/${s.id}.json`;
  const rec = JSON.parse(readFileSync(file, 'utf8')) as Rec;
  const kek = await loadKek(v.config, await readVaultMeta(v.paths));
  const dek = randomBytes(KEY_BYTES);
  const sealed = seal(dek, Buffer.from(value), secretAad(2, { id: s.id, scope: s.scope }));
  writeFileSync(
    file,
    JSON.stringify({
      ...rec,
      attachedGroups: groups,
      aadVersion: 2,
      value: sealed,
      wraps: [wrapDek(kek, s.id, dek)],
    }),
  );
  kek.dispose();
}

describe('group attachments in the AAD', () => {
  it('new and attached records are v3; attach and detach keep the value readable', async () => {
    const { v, s, read } = await vaultWith('value-one-123');
    expect(read().aadVersion).toBe(AAD_VERSION);
    expect(AAD_VERSION).toBe(3);
    await v.attachGroup(s.id, 'w1', 'g1');
    await v.attachGroup(s.id, 'w1', 'g2');
    expect(read().attachedGroups).toHaveLength(2);
    expect((await v.decryptSecret(s.id)).reveal()).toBe('value-one-123');
    await v.detachGroup(s.id, 'w1', 'g1');
    expect(read().attachedGroups).toEqual([{ workspaceId: 'w1', groupId: 'g2' }]);
    expect((await v.decryptSecret(s.id)).reveal()).toBe('value-one-123');
  });

  it.each([
    ['adding a group', (g: Rec['attachedGroups']) => [...g, { workspaceId: 'w1', groupId: 'evil' }]],
    [
      'moving it to another workspace',
      (g: Rec['attachedGroups']) => g.map((x) => ({ ...x, workspaceId: 'w2' })),
    ],
    ['renaming the group', (g: Rec['attachedGroups']) => g.map((x) => ({ ...x, groupId: 'other' }))],
    ['dropping the attachment', () => []],
  ])('a record file edited by %s fails to decrypt (storage_corrupt)', async (_what, edit) => {
    const { v, s, read, write } = await vaultWith('value-two-456');
    await v.attachGroup(s.id, 'w1', 'g1');
    const rec = read();
    write({ ...rec, attachedGroups: edit(rec.attachedGroups) });
    await expect(v.decryptSecret(s.id)).rejects.toMatchObject({ code: 'storage_corrupt' });
    // Attaching or detaching through the vault never launders the edit into a valid record.
    await expect(v.attachGroup(s.id, 'w9', 'g9')).rejects.toMatchObject({ code: 'storage_corrupt' });
  });

  it('the order of attachments on disk is not part of the binding', async () => {
    const { v, s, read, write } = await vaultWith('value-three-789');
    await v.attachGroup(s.id, 'w1', 'g1');
    await v.attachGroup(s.id, 'w0', 'g2');
    const rec = read();
    write({ ...rec, attachedGroups: [...rec.attachedGroups].reverse() });
    expect((await v.decryptSecret(s.id)).reveal()).toBe('value-three-789');
  });

  it('a v2 record stays readable, and attach migrates it to v3 (binding its attachments)', async () => {
    const { v, s, read, write } = await vaultWith('legacy-value-1');
    await downgradeToV2(v, s, 'legacy-value-1', [{ workspaceId: 'w1', groupId: 'g1' }]);
    expect(read().aadVersion).toBe(2);
    expect((await v.decryptSecret(s.id)).reveal()).toBe('legacy-value-1');
    await v.attachGroup(s.id, 'w1', 'g2');
    const rec = read();
    expect(rec.aadVersion).toBe(3);
    expect((await v.decryptSecret(s.id)).reveal()).toBe('legacy-value-1');
    write({ ...rec, attachedGroups: [{ workspaceId: 'w1', groupId: 'g1' }] });
    await expect(v.decryptSecret(s.id)).rejects.toMatchObject({ code: 'storage_corrupt' });
  });

  it('rotate-master migrates v2 records to v3 and leaves the values readable', async () => {
    const { v, s, read, write } = await vaultWith('legacy-value-2');
    const other = await v.createSecret({ name: 'OTHER', value: 'current-value', scope: { kind: 'global' } });
    await downgradeToV2(v, s, 'legacy-value-2', [{ workspaceId: 'w1', groupId: 'g1' }]);
    await v.rotateMaster();
    const rec = read();
    expect(rec.aadVersion).toBe(3);
    expect((rec.wraps as unknown[]).length).toBe(1);
    expect((await v.decryptSecret(s.id)).reveal()).toBe('legacy-value-2');
    expect((await v.decryptSecret(other.id)).reveal()).toBe('current-value');
    // Reopened from disk (new KEK from the provider), still readable; now the attachment is bound.
    const reopened = await Vault.open(v.config);
    expect((await reopened.decryptSecret(s.id)).reveal()).toBe('legacy-value-2');
    write({ ...rec, attachedGroups: [{ workspaceId: 'w1', groupId: 'evil' }] });
    await expect(reopened.decryptSecret(s.id)).rejects.toMatchObject({ code: 'storage_corrupt' });
  });

  it('attach needs the key: a locked passphrase vault refuses with vault_unavailable', async () => {
    const dir = tempDir();
    const init = await Vault.init(configFor(dir), {
      provider: 'passphrase',
      passphrase: 'correct horse battery',
      kdf: FAST_KDF,
    });
    const s = await init.createSecret({ name: 'T', value: 'pp-value-1', scope: { kind: 'global' } });
    init.close();
    const locked = await Vault.open(configFor(dir));
    expect(locked.isLocked()).toBe(true);
    await expect(locked.attachGroup(s.id, 'w1', 'g1')).rejects.toMatchObject({ code: 'vault_unavailable' });
    const rec = JSON.parse(readFileSync(`${locked.paths.secretsDir}/${s.id}.json`, 'utf8')) as Rec;
    expect(rec.attachedGroups).toEqual([]);
  });
});

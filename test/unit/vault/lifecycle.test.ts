// Vault lifecycle: locking, passphrases, dev flag, corrupt files, names/scopes, no plaintext at rest.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { SecretBytes, Vault, toSecretInfo } from '../../../src/stores/vault/index.js';
import { FAST_KDF, configFor, dirs, filesContaining, tempDir, walk } from './fixtures/helpers.js';

describe('locking and passphrases', () => {
  it('refuses a wrong passphrase and a locked vault gives vault_unavailable', async () => {
    const config = configFor(tempDir());
    const v = await Vault.init(config, { provider: 'passphrase', passphrase: 'pw-right', kdf: FAST_KDF });
    const s = await v.createSecret({ name: 'K', value: 'v1', scope: { kind: 'global' } });
    await expect(Vault.open(config, { passphrase: 'pw-wrong' })).rejects.toMatchObject({
      code: 'vault_unavailable',
      message: 'wrong passphrase',
    });
    const locked = await Vault.open(config);
    expect(locked.isLocked()).toBe(true);
    expect((await locked.status()).locked).toBe(true);
    await expect(locked.decryptSecret(s.id)).rejects.toMatchObject({ code: 'vault_unavailable' });
    await expect(
      locked.createSecret({ name: 'X', value: 'y', scope: { kind: 'global' } }),
    ).rejects.toMatchObject({ code: 'vault_unavailable' });
    await expect(locked.unlock('nope')).rejects.toMatchObject({ code: 'vault_unavailable' });
    await locked.unlock('pw-right');
    expect((await locked.decryptSecret(s.id)).reveal()).toBe('v1');
    await locked.lock();
    await expect(locked.decryptSecret(s.id)).rejects.toMatchObject({ code: 'vault_unavailable' });
    const kinds = (await locked.audit.list()).map((e) => e.kind);
    expect(kinds).toEqual(
      expect.arrayContaining(['vault.init', 'secret.create', 'vault.unlock', 'vault.lock']),
    );
  });
});

describe('dev flag', () => {
  it('init --dev is honoured; copying the flag/MAC into another vault is not', async () => {
    const devCfg = configFor(tempDir());
    const dev = await Vault.init(devCfg, { provider: 'file', dev: true });
    expect(dev.devEnabled()).toBe(true);
    expect((await (await Vault.open(devCfg)).status()).dev).toBe(true);

    const plainCfg = configFor(tempDir());
    await Vault.init(plainCfg, { provider: 'file' });
    const devMeta = JSON.parse(readFileSync(dev.paths.vaultJson, 'utf8')) as Record<string, unknown>;
    const plainMeta = JSON.parse(readFileSync(`${plainCfg.vaultDir}/vault.json`, 'utf8')) as Record<
      string,
      unknown
    >;
    writeFileSync(`${plainCfg.vaultDir}/vault.json`, JSON.stringify({ ...plainMeta, dev: devMeta.dev }));
    expect((await Vault.open(plainCfg)).devEnabled()).toBe(false);
    writeFileSync(
      `${plainCfg.vaultDir}/vault.json`,
      JSON.stringify({ ...plainMeta, vaultId: devMeta.vaultId, dev: devMeta.dev }),
    );
    expect((await Vault.open(plainCfg)).devEnabled()).toBe(false);
    writeFileSync(
      `${plainCfg.vaultDir}/vault.json`,
      JSON.stringify({ ...plainMeta, dev: { enabled: true, mac: 'AAAA' } }),
    );
    expect((await Vault.open(plainCfg)).devEnabled()).toBe(false);
  });

  it('dev survives rotate-master; a locked passphrase dev vault reports dev false', async () => {
    const cfg = configFor(tempDir());
    const v = await Vault.init(cfg, { provider: 'passphrase', passphrase: 'pw', kdf: FAST_KDF, dev: true });
    await v.rotateMaster({ newPassphrase: 'pw2' });
    expect(v.devEnabled()).toBe(true);
    expect((await Vault.open(cfg)).devEnabled()).toBe(false);
    expect((await Vault.open(cfg, { passphrase: 'pw2' })).devEnabled()).toBe(true);
  });
});

describe('corrupt files', () => {
  it('vault.json and secret files: storage_corrupt naming the file and field', async () => {
    const cfg = configFor(tempDir());
    const v = await Vault.init(cfg, { provider: 'file' });
    const s = await v.createSecret({ name: 'K', value: 'v', scope: { kind: 'global' } });
    const secretFile = `${v.paths.secretsDir}/${s.id}.json`;
    const rec = JSON.parse(readFileSync(secretFile, 'utf8')) as Record<string, unknown>;
    writeFileSync(secretFile, JSON.stringify({ ...rec, scope: { kind: 'workspace' } }));
    await expect(v.listSecrets()).rejects.toMatchObject({
      code: 'storage_corrupt',
      message: expect.stringContaining(`${secretFile}: field scope.workspaceId`),
    });
    writeFileSync(secretFile, '{"oops');
    await expect(v.getSecret(s.id)).rejects.toMatchObject({
      code: 'storage_corrupt',
      message: expect.stringContaining(secretFile),
    });
    writeFileSync(
      v.paths.vaultJson,
      JSON.stringify({ format: 'aivault.vault.v1', provider: { kind: 'file' } }),
    );
    await expect(Vault.open(cfg)).rejects.toMatchObject({
      code: 'storage_corrupt',
      message: expect.stringContaining(v.paths.vaultJson),
    });
  });
});

describe('secrets', () => {
  it('validates names and scopes, keeps names unique per scope, never returns values', async () => {
    const v = await Vault.init(configFor(tempDir()), { provider: 'file' });
    await expect(
      v.createSecret({ name: '1bad', value: 'x', scope: { kind: 'global' } }),
    ).rejects.toMatchObject({ code: 'usage' });
    await expect(
      v.createSecret({ name: 'W', value: 'x', scope: { kind: 'workspace' } }),
    ).rejects.toMatchObject({ code: 'usage' });
    await expect(
      v.createSecret({ name: 'G', value: 'x', scope: { kind: 'group', workspaceId: 'w' } }),
    ).rejects.toMatchObject({ code: 'usage' });
    const a = await v.createSecret({
      name: 'TOKEN',
      value: 'tok-1',
      scope: { kind: 'global' },
      aliases: ['TOK'],
    });
    await expect(
      v.createSecret({ name: 'TOK', value: 'x', scope: { kind: 'global' } }),
    ).rejects.toMatchObject({ code: 'conflict' });
    const w = await v.createSecret({
      name: 'TOKEN',
      value: 'tok-2',
      scope: { kind: 'workspace', workspaceId: 'w1' },
    });
    await expect(v.getSecret('TOKEN')).rejects.toMatchObject({ code: 'conflict' });
    expect((await v.getSecret('TOKEN', { kind: 'workspace', workspaceId: 'w1' })).id).toBe(w.id);
    const renamed = await v.updateSecret(a.id, { name: 'TOKEN2', aliases: [] });
    expect(renamed).toMatchObject({ name: 'TOKEN2', aliases: [] });
    const attached = await v.attachGroup(a.id, 'w1', 'g1');
    expect(toSecretInfo(attached).attachedGroups).toEqual([{ workspaceId: 'w1', groupId: 'g1' }]);
    await expect(v.attachGroup(w.id, 'other', 'g')).rejects.toMatchObject({ code: 'usage' });
    expect((await v.detachGroup(a.id, 'w1', 'g1')).attachedGroups).toEqual([]);
    const rotated = await v.rotateSecret(a.id, 'tok-1b');
    expect(rotated.rotatedAtMs).toBeTypeOf('number');
    expect((await v.decryptSecret(a.id)).reveal()).toBe('tok-1b');
    const imported = await v.importEntries(
      [
        { name: 'TOKEN2', value: 'tok-imp' },
        { name: 'NEW_ONE', value: 'new-imp' },
      ],
      { kind: 'global' },
    );
    expect(imported.map((m) => m.name)).toEqual(['TOKEN2', 'NEW_ONE']);
    expect((await v.decryptSecret(a.id)).reveal()).toBe('tok-imp');
    expect(JSON.stringify(await v.listSecrets())).not.toMatch(/tok-|new-imp/);
    await v.deleteSecret(w.id);
    await expect(v.getSecret(w.id)).rejects.toMatchObject({ code: 'not_found' });
    const kinds = new Set((await v.audit.list()).map((e) => e.kind));
    for (const k of [
      'secret.create',
      'secret.update',
      'secret.rotate',
      'secret.delete',
      'secret.attach_group',
      'secret.detach_group',
      'secret.import',
    ]) {
      expect(kinds).toContain(k);
    }
    for (const value of ['tok-1', 'tok-2', 'tok-1b', 'tok-imp', 'new-imp']) {
      expect(filesContaining(v.paths.root, value)).toEqual([]);
    }
    for (const f of walk(v.paths.root)) expect(statSync(f).mode & 0o777, f).toBe(0o600);
    for (const d of dirs(v.paths.root)) expect(statSync(d).mode & 0o777, d).toBe(0o700);
  });

  it('refuses to re-init a vault holding secrets unless force', async () => {
    const cfg = configFor(tempDir());
    const v = await Vault.init(cfg, { provider: 'file' });
    await v.createSecret({ name: 'K', value: 'v', scope: { kind: 'global' } });
    await expect(Vault.init(cfg, { provider: 'file' })).rejects.toMatchObject({ code: 'conflict' });
    const again = await Vault.init(cfg, { provider: 'file', force: true });
    expect((await again.status()).secretCount).toBe(0);
  });

  it('SecretBytes and Kek redact themselves', () => {
    const s = SecretBytes.fromString('hunter2');
    expect(`${s}`).toBe('[redacted]');
    expect(JSON.stringify({ s })).toBe('{"s":"[redacted]"}');
    expect(inspect(s)).toBe('[redacted]');
    expect(s.reveal()).toBe('hunter2');
    s.dispose();
    expect(() => s.reveal()).toThrow();
  });

  it('auto-inits on open with the file provider at the default key file', async () => {
    const cfg = configFor(tempDir());
    const v = await Vault.open(cfg);
    const st = await v.status();
    expect(st).toMatchObject({ provider: 'file', initialized: true, locked: false, secretCount: 0 });
    expect(statSync(cfg.defaultKeyFile).mode & 0o777).toBe(0o600);
    await expect(Vault.open(configFor(tempDir()), { autoInit: false })).rejects.toMatchObject({
      code: 'vault_unavailable',
    });
  });
});

// One behavioural suite every KeyProvider must pass, run through the Vault API (hono-style contract test).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Vault } from '../../src/stores/vault/index.js';

export interface ProviderFixture {
  /** Create a fresh vault using this provider. */
  init(): Promise<Vault>;
  /** A new Vault instance on the same dir, unlocked (a passphrase fixture unlocks with the current passphrase). */
  reopen(): Promise<Vault>;
  /** Input for rotateMaster; `afterRotate` lets the fixture follow the new key (e.g. update an env var). */
  rotateInput(): { newKey?: string; newPassphrase?: string };
  afterRotate?(): void;
  /** Re-open with the OLD key material after rotation; must fail. */
  reopenWithOldKey?(): Promise<Vault>;
  cleanup?(): Promise<void>;
}

export function runKeyProviderSuite(name: string, makeFixture: () => Promise<ProviderFixture>): void {
  describe(`key provider contract: ${name}`, () => {
    it('round-trips a secret across instances', async () => {
      const fx = await makeFixture();
      try {
        const v = await fx.init();
        const meta = await v.createSecret({
          name: 'API_KEY',
          value: 'sk-contract-1',
          scope: { kind: 'global' },
        });
        expect(JSON.stringify(meta)).not.toContain('sk-contract-1');
        const v2 = await fx.reopen();
        const value = await v2.decryptSecret(meta.id);
        expect(value.reveal()).toBe('sk-contract-1');
        expect(String(value)).toBe('[redacted]');
        value.dispose();
        const st = await v2.status();
        expect(st.locked).toBe(false);
        expect(st.secretCount).toBe(1);
        expect(st.kekFingerprint).toMatch(/^[0-9a-f]{16}$/);
        const vaultJson = readFileSync(v2.paths.vaultJson, 'utf8');
        expect(vaultJson).not.toContain('sk-contract-1');
        v.close();
        v2.close();
      } finally {
        await fx.cleanup?.();
      }
    });

    it('rotate-master keeps secrets readable and retires the old key', async () => {
      const fx = await makeFixture();
      try {
        const v = await fx.init();
        const a = await v.createSecret({ name: 'A', value: 'value-a', scope: { kind: 'global' } });
        const b = await v.createSecret({
          name: 'B',
          value: 'value-b',
          scope: { kind: 'workspace', workspaceId: 'w1' },
        });
        const before = (await v.status()).kekFingerprint;
        const res = await v.rotateMaster(fx.rotateInput());
        expect(res.rewrapped).toBe(2);
        expect(res.kekFingerprint).not.toBe(before);
        expect((await v.decryptSecret(a.id)).reveal()).toBe('value-a');
        fx.afterRotate?.();
        const v2 = await fx.reopen();
        expect((await v2.decryptSecret(b.id)).reveal()).toBe('value-b');
        expect((await v2.status()).kekFingerprint).toBe(res.kekFingerprint);
        for (const w of JSON.parse(readFileSync(`${v2.paths.secretsDir}/${a.id}.json`, 'utf8'))
          .wraps as unknown[]) {
          expect(w).toMatchObject({ kekId: expect.stringMatching(new RegExp(`^${res.kekFingerprint}`)) });
        }
        if (fx.reopenWithOldKey) {
          await expect(fx.reopenWithOldKey().then((old) => old.decryptSecret(a.id))).rejects.toMatchObject({
            code: 'vault_unavailable',
          });
        }
        v.close();
        v2.close();
      } finally {
        await fx.cleanup?.();
      }
    });
  });
}

/**
 * Attack (SPEC §9): edit vault.json of a real vault to switch dev mode on (so AIVAULT_DEV_RESOLVE sends the
 * key to the attacker): a made-up MAC, a valid dev block copied from another (attacker-made) dev vault, and
 * a whole provider section swapped for the attacker's own key + dev block. Stopped by: the dev flag is a MAC
 * under a key derived from THIS vault's KEK and vaultId; swapping the KEK makes every real secret
 * undecryptable (DEKs are wrapped by the real KEK), so a "dev" vault built that way holds nothing usable.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  MOCK_REDACTED,
  startAttackEnv,
  uniqueSecret,
  wireError,
  type AttackEnv,
} from './support/attack-env.js';

let real: AttackEnv;
let attackerVault: AttackEnv;
let original = '';
beforeAll(async () => {
  real = await startAttackEnv({ dev: false });
  attackerVault = await startAttackEnv({ seed: false }); // a dev vault the attacker made, with its own key
  original = readFileSync(join(real.vaultDir, 'vault.json'), 'utf8');
});
afterAll(async () => {
  await real?.close();
  await attackerVault?.close();
});

function keyReachedAnyone(): boolean {
  return real.raw.some(
    (r) => JSON.stringify(r).includes(real.openaiKey) || JSON.stringify(r).includes(real.echoKey),
  );
}

async function attempt(meta: Record<string, unknown>): Promise<void> {
  writeFileSync(join(real.vaultDir, 'vault.json'), JSON.stringify(meta, null, 2));
  try {
    const st = await real.cli(['-v', 'status']);
    if (st.code === 0) expect(JSON.parse(st.stdout)).toMatchObject({ devOverridesHonoured: false });
    await real.cli(['restart']);
    for (const extra of [{}, { AIVAULTD_DISABLE: '1' }]) {
      const r = await real.cli(['-v', 'invoke', 'openai/models', '--timeout-ms', '4000'], extra);
      expect(r.code).not.toBe(0);
      expect(r.stdout + r.stderr).not.toMatch(/at .*\.js:\d+/);
    }
    expect(keyReachedAnyone()).toBe(false);
    for (const r of real.raw) expect(JSON.stringify(r.headers)).not.toContain(MOCK_REDACTED);
  } finally {
    writeFileSync(join(real.vaultDir, 'vault.json'), original);
  }
}

describe('attack: tampered vault.json turns dev mode on', { timeout: 60_000 }, () => {
  it('dev {enabled: true} with a made-up MAC is not honoured', async () => {
    const meta = JSON.parse(original) as Record<string, unknown>;
    await attempt({ ...meta, dev: { enabled: true, mac: Buffer.alloc(32, 7).toString('base64') } });
  });

  it('a valid dev block copied from another vault is not honoured (MAC binds KEK + vaultId)', async () => {
    const meta = JSON.parse(original) as Record<string, unknown>;
    const other = JSON.parse(readFileSync(join(attackerVault.vaultDir, 'vault.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    await attempt({ ...meta, dev: other.dev });
    await attempt({ ...meta, vaultId: other.vaultId, dev: other.dev });
  });

  it('swapping in the attacker’s key + dev block yields a dev vault whose real secrets do not decrypt', async () => {
    const meta = JSON.parse(original) as Record<string, unknown>;
    const other = JSON.parse(readFileSync(join(attackerVault.vaultDir, 'vault.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    writeFileSync(
      join(real.vaultDir, 'vault.json'),
      JSON.stringify({
        ...meta,
        provider: other.provider,
        kekId: other.kekId,
        vaultId: other.vaultId,
        dev: other.dev,
      }),
    );
    try {
      await real.cli(['restart']);
      const before = real.raw.length;
      for (const extra of [{}, { AIVAULTD_DISABLE: '1' }]) {
        const r = await real.cli(['-v', 'invoke', 'openai/models', '--timeout-ms', '4000'], extra);
        expect(r.code).not.toBe(0);
      }
      expect(real.raw.length).toBe(before);
      expect(keyReachedAnyone()).toBe(false);
    } finally {
      writeFileSync(join(real.vaultDir, 'vault.json'), original);
    }
  });

  // Controls: the probes above pass only because the product refuses, not because it is broken.
  it('control: the same invoke through a genuinely dev vault reaches the mock with the key (the probes can fail)', async () => {
    const key = uniqueSecret('control');
    attackerVault.addSecret(key);
    const c = await attackerVault.cli(
      ['-v', 'secrets', 'create', '--name', 'OPENAI_API_KEY', '--value-stdin'],
      {},
      key,
    );
    expect(c.code, c.stderr).toBe(0);
    for (const extra of [{}, { AIVAULTD_DISABLE: '1' }]) {
      const r = await attackerVault.cli(['-v', 'invoke', 'openai/models', '--timeout-ms', '4000'], extra);
      expect(r.code, r.stdout + r.stderr).toBe(0);
    }
    expect(attackerVault.raw.filter((q) => JSON.stringify(q.headers).includes(key))).toHaveLength(2);
  });

  it('control: with the original file back, the real vault works and refuses only for want of dev mode', async () => {
    await real.cli(['restart']);
    const st = await real.cli(['-v', 'status']);
    expect(st.code, st.stderr).toBe(0);
    expect(JSON.parse(st.stdout)).toMatchObject({ devOverridesHonoured: false });
    const r = await real.cli(['-v', 'invoke', 'openai/models', '--timeout-ms', '4000']);
    expect(r.code).not.toBe(0);
    // It failed for the right reason: the request went to the real host (the dev resolver was ignored),
    // which does not resolve offline or answers 401 to the made-up key online; a broken vault or daemon
    // fails before that with another code.
    const out = r.stdout + r.stderr;
    if (!/"status":\s*401/.test(out)) {
      expect(wireError(r)).toMatchObject({
        error: 'upstream_unreachable',
        message: expect.stringMatching(/^upstream api\.openai\.com: /) as unknown,
      });
    }
    expect(real.upstream.requests).toEqual([]);
  });
});

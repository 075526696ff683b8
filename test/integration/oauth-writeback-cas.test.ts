/**
 * OAuth2 token write-back in the crypto worker is a compare-and-swap against the value the refresh lease
 * read (src/crypto-worker/crypto-service.ts; in-process mode: leaseVia over vaultSecretSource). Real vault, real crypto service, a second Vault playing the CLI.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CryptoService } from '../../src/crypto-worker/crypto-service.js';
import { Vault } from '../../src/stores/vault/index.js';
import { isAivaultError } from '../../src/core/errors.js';
import { createDevVault, type DevVault } from '../support/dev-vault.js';
import { leaseVia } from '../../src/request-worker/pipeline/oauth2.js';
import { vaultSecretSource } from '../../src/request-worker/pipeline/in-process.js';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array | undefined): string => new TextDecoder().decode(b);

let dv: DevVault;
let secretId: string;
beforeEach(async () => {
  dv = await createDevVault({ prefix: 'aivault-cas-' });
  secretId = (await dv.vault.createSecret({ name: 'TOKEN', value: 'grant-1', scope: { kind: 'global' } })).id;
});
afterEach(() => dv.close());

async function stored(svc: CryptoService): Promise<string> {
  return text((await svc.decrypt([secretId])).get(secretId));
}

describe('OAuth2 write-back (compare-and-swap)', () => {
  it('writes the refreshed token, and the next lease reads it', async () => {
    const svc = new CryptoService(dv.config);
    const a = await svc.leaseSecret(secretId);
    expect(text(a.value)).toBe('grant-1');
    await svc.releaseSecret(secretId, a.leaseId, utf8('grant-2'));
    const b = await svc.leaseSecret(secretId);
    expect(text(b.value)).toBe('grant-2');
    await svc.releaseSecret(secretId, b.leaseId);
  });

  it('a `secrets rotate` during the refresh wins: the refreshed token is discarded with a clear error', async () => {
    const svc = new CryptoService(dv.config);
    const lease = await svc.leaseSecret(secretId);
    const cli = await Vault.open(dv.config, { autoInit: false, actor: 'cli' });
    await cli.rotateSecret(secretId, 'user-consented-again');
    cli.close();
    const err = await svc.releaseSecret(secretId, lease.leaseId, utf8('grant-2')).catch((e: unknown) => e);
    expect(isAivaultError(err) && err.code).toBe('vault_unavailable');
    expect((err as Error).message).toMatch(/changed while it was being refreshed/);
    expect(await stored(svc)).toBe('user-consented-again');
    // The lease was released: the next refresher gets it at once and reads the user's value.
    const next = await svc.leaseSecret(secretId);
    expect(text(next.value)).toBe('user-consented-again');
    await svc.releaseSecret(secretId, next.leaseId);
  });

  it('a refresh that outlived its lease still saves its token when nothing else wrote meanwhile', async () => {
    const svc = new CryptoService(dv.config, { leaseTimeoutMs: 20 });
    const lease = await svc.leaseSecret(secretId);
    await new Promise((r) => setTimeout(r, 80)); // lease expired
    await svc.releaseSecret(secretId, lease.leaseId, utf8('grant-2-late'));
    expect(await stored(svc)).toBe('grant-2-late');
  });

  it('of two refreshes racing after a lease expiry, only the first write lands', async () => {
    const svc = new CryptoService(dv.config, { leaseTimeoutMs: 20 });
    const slow = await svc.leaseSecret(secretId);
    await new Promise((r) => setTimeout(r, 80)); // slow holder's lease expires
    const fast = await svc.leaseSecret(secretId);
    await svc.releaseSecret(secretId, fast.leaseId, utf8('grant-2-fast'));
    const err = await svc
      .releaseSecret(secretId, slow.leaseId, utf8('grant-2-slow'))
      .catch((e: unknown) => e);
    expect(isAivaultError(err) && err.code).toBe('vault_unavailable');
    expect(await stored(svc)).toBe('grant-2-fast');
  });

  it('in-process mode (AIVAULTD_DISABLE=1) uses the same compare-and-swap', async () => {
    const lease = leaseVia(vaultSecretSource(dv.config, dv.vault));
    const a = await lease(secretId);
    expect(a.current).toBe('grant-1');
    await a.release('grant-2');
    const b = await lease(secretId);
    expect(b.current).toBe('grant-2');
    const cli = await Vault.open(dv.config, { autoInit: false, actor: 'cli' });
    await cli.rotateSecret(secretId, 'user-consented-again');
    cli.close();
    const err = await b.release('grant-3').catch((e: unknown) => e);
    expect(isAivaultError(err) && err.code).toBe('vault_unavailable');
    expect((err as Error).message).toMatch(/changed while it was being refreshed/);
    const c = await lease(secretId);
    expect(c.current).toBe('user-consented-again');
    await c.release();
  });
});

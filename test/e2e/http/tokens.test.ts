/** The token store and verifier (pure-ish: a temp vault dir, a pinned clock). */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  checkMintInput,
  createOperatorToken,
  listTokens,
  mintProxyToken,
  parseTtl,
  revokeToken,
  tokensPath,
  TokenVerifier,
} from '../../../src/stores/tokens/tokens.js';

const dir = (): string => mkdtempSync(join(tmpdir(), 'aivault-tokens-'));

describe('tokens', () => {
  it('parses TTLs', () => {
    expect(parseTtl('900')).toBe(900_000);
    expect(parseTtl('30s')).toBe(30_000);
    expect(parseTtl('15m')).toBe(900_000);
    expect(parseTtl('2h')).toBe(7_200_000);
    expect(parseTtl('1d')).toBe(86_400_000);
    expect(() => parseTtl('soon')).toThrow(/ttl/);
  });

  it('validates mint input', () => {
    expect(() => checkMintInput({ capabilities: [] })).toThrow(/at least one/);
    expect(() => checkMintInput({ capabilities: ['*'] })).toThrow();
    expect(() => checkMintInput({ capabilities: ['a/*/*'] })).toThrow();
    expect(() => checkMintInput({ capabilities: ['openai/*'], ttlMs: 8 * 86_400_000 })).toThrow(/7 days/);
    expect(() => checkMintInput({ capabilities: ['openai/*'], groupId: 'g' })).toThrow(/workspace/);
    expect(() =>
      checkMintInput({ capabilities: ['openai/*', 'echo/api'], credential: 'openai' }),
    ).not.toThrow();
  });

  it('verifies by hash with expiry, revocation and class separation', async () => {
    const d = dir();
    let now = 1_000_000;
    const v = new TokenVerifier(d, () => now);
    const { token, info } = await mintProxyToken(d, { capabilities: ['echo/api'], ttlMs: 60_000 }, now);
    expect((await v.verifyProxy(token)).id).toBe(info.id);
    await expect(v.verifyProxy(token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'))).rejects.toMatchObject(
      {
        code: 'token_invalid',
      },
    );
    await expect(v.verifyOperator(token)).rejects.toMatchObject({ code: 'operator_auth_required' });
    const op = await createOperatorToken(d, { name: 'x' }, now);
    expect((await v.verifyOperator(op.token)).id).toBe(op.info.id);
    await expect(v.verifyProxy(op.token)).rejects.toMatchObject({ code: 'token_invalid' });
    now += 60_001;
    await expect(v.verifyProxy(token)).rejects.toMatchObject({
      code: 'token_invalid',
      message: 'proxy token expired',
    });
    await revokeToken(d, op.info.id, now);
    await expect(v.verifyOperator(op.token)).rejects.toMatchObject({ code: 'operator_auth_required' });
    expect(await listTokens(d, now)).toEqual([]);
  });

  it("an open tunnel's check by id: active proxy tokens only (revoked, expired, operator, unknown → false)", async () => {
    const d = dir();
    let now = 1_000_000;
    const v = new TokenVerifier(d, () => now);
    const a = await mintProxyToken(d, { capabilities: ['echo/api'], ttlMs: 60_000 }, now);
    const b = await mintProxyToken(d, { capabilities: ['echo/api'], ttlMs: 120_000 }, now);
    const op = await createOperatorToken(d, { name: 'x' }, now);
    expect(await v.isActiveProxyToken(a.info.id)).toBe(true);
    expect(await v.isActiveProxyToken(b.info.id)).toBe(true);
    expect(await v.isActiveProxyToken(op.info.id)).toBe(false);
    expect(await v.isActiveProxyToken('no-such-id')).toBe(false);
    await revokeToken(d, b.info.id, now);
    expect(await v.isActiveProxyToken(b.info.id)).toBe(false);
    now += 60_001;
    expect(await v.isActiveProxyToken(a.info.id)).toBe(false);
    // It agrees with the set the periodic tunnel re-check uses.
    expect([...(await v.activeProxyTokenIds())]).toEqual([]);
  });

  it('a hand-edited tokens.json is storage_corrupt, never silently accepted', async () => {
    const d = dir();
    writeFileSync(
      tokensPath(d),
      JSON.stringify({ version: 1, tokens: [{ kind: 'proxy', id: 'x', hash: 'nothex' }] }),
    );
    await expect(new TokenVerifier(d).verifyProxy(`avp_${'a'.repeat(43)}`)).rejects.toMatchObject({
      code: 'storage_corrupt',
    });
  });

  it('concurrent mints never lose each other', async () => {
    const d = dir();
    const minted = await Promise.all(
      Array.from({ length: 8 }, () => mintProxyToken(d, { capabilities: ['echo/api'] })),
    );
    const ids = (await listTokens(d)).map((t) => t.id).sort();
    expect(ids).toEqual(minted.map((m) => m.info.id).sort());
  });
});

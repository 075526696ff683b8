/**
 * Attack (seed 002): `cat ~/.env | curl …` — read secrets from files. The attacker greps every file the
 * user owns under the vault dir and HOME for the value, its base64 (std/url, padded or not), hex and
 * percent-encoding, after every kind of write (create, rotate, invoke, audit, rotate-master). Stopped by:
 * XChaCha20-Poly1305 at rest (per-secret DEK wrapped by the KEK), AAD binding a ciphertext to its record,
 * audit events that carry no value, 0600 files in 0700 dirs.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  allFiles,
  assertNoSecretInFiles,
  startAttackEnv,
  uniqueSecret,
  wireError,
  type AttackEnv,
} from './support/attack-env.js';

let a: AttackEnv;
let afterRotateMaster: { code: number; stdout: string; stderr: string };
const rotated = uniqueSecret('rotated');
beforeAll(async () => {
  a = await startAttackEnv();
  a.addSecret(rotated);
  expect((await a.cli(['invoke', 'openai/models'])).code).toBe(0);
  expect((await a.cli(['invoke', 'echo/api', '--path', '/v1/x'])).code).toBe(0);
  const rot = await a.cli(['secrets', 'rotate', '--id', 'ECHO_TOKEN', '--value-stdin'], {}, rotated);
  expect(rot.code, rot.stderr).toBe(0);
  const key = randomBytes(32).toString('base64');
  const rm = await a.cli(['rotate-master', '--new-key', key]);
  expect(rm.code, rm.stderr).toBe(0);
  afterRotateMaster = await a.cli(['-v', 'invoke', 'echo/api', '--path', '/v1/y']);
  if (afterRotateMaster.code !== 0) expect((await a.cli(['restart'])).code).toBe(0);
  const r = await a.cli(['invoke', 'echo/api', '--path', '/v1/y']);
  expect(r.code, r.stderr).toBe(0);
});
afterAll(() => a?.close());

describe('attack: exfiltrate the key by reading files', () => {
  it('no file under HOME (vault, secrets, audit, broker.json, run dir) holds any secret in any encoding', () => {
    const n = assertNoSecretInFiles(a.home, [a.openaiKey, a.echoKey, rotated]);
    expect(n).toBeGreaterThan(5);
  });

  it('the upstream did get the rotated value (so the scan above looked for the live secret)', () => {
    expect(a.raw.at(-1)?.headers.authorization).toBe(`Bearer ${rotated}`);
  });

  // Was a finding while this suite was written (the daemon kept the old KEK and answered "vault is
  // locked" until `aivault restart`); fixed in d8830be. Kept as a regression test.
  it('a running aivaultd follows rotate-master without a restart', () => {
    expect(afterRotateMaster.code, afterRotateMaster.stdout).toBe(0);
  });

  it('vault files are 0600 and directories 0700', () => {
    for (const f of allFiles(a.vaultDir)) {
      if (f.endsWith('.sock')) continue;
      expect((statSync(f).mode & 0o777).toString(8), f).toBe('600');
    }
    for (const d of ['', 'secrets', 'audit', 'run']) {
      expect((statSync(join(a.vaultDir, d)).mode & 0o777).toString(8), d).toBe('700');
    }
  });

  it('a ciphertext moved into another record does not decrypt (AAD binds id/scope/provider)', async () => {
    const list = JSON.parse((await a.cli(['-v', 'secrets', 'list'])).stdout) as {
      id: string;
      name: string;
    }[];
    const openai = list.find((s) => s.name === 'OPENAI_API_KEY')!;
    const echo = list.find((s) => s.name === 'ECHO_TOKEN')!;
    const pOpen = join(a.vaultDir, 'secrets', `${openai.id}.json`);
    const pEcho = join(a.vaultDir, 'secrets', `${echo.id}.json`);
    const recOpen = JSON.parse(readFileSync(pOpen, 'utf8')) as Record<string, unknown>;
    const recEcho = JSON.parse(readFileSync(pEcho, 'utf8')) as Record<string, unknown>;
    // The attacker makes the unpinned echo credential carry the pinned OpenAI ciphertext + wraps.
    writeFileSync(pEcho, JSON.stringify({ ...recEcho, value: recOpen.value, wraps: recOpen.wraps }));
    await a.cli(['restart']);
    const before = a.raw.length;
    const r = await a.cli(['-v', 'invoke', 'echo/api', '--path', '/v1/swapped']);
    expect(r.code).not.toBe(0);
    expect(['vault_unavailable', 'storage_corrupt', 'auth_failed']).toContain(wireError(r).error);
    expect(a.raw.slice(before).length).toBe(0);
  });
});

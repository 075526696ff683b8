// Real processes racing on one vault: init races, concurrent creates, and a writer SIGKILLed mid-loop.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Vault } from '../../src/stores/vault/index.js';
import { configFor, tempDir, walk } from '../unit/vault/fixtures/helpers.js';

const WRITER = fileURLToPath(new URL('../unit/vault/fixtures/writer.ts', import.meta.url));

function run(dir: string, prefix: string, count: string) {
  const child = spawn(process.execPath, ['--import', 'tsx', WRITER, dir, prefix, count], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const done = new Promise<number>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1))),
  );
  return { child, done, stderr: () => err };
}

describe('vault under concurrent processes', () => {
  it('20 processes auto-initialising and creating secrets: one vault, nothing lost', async () => {
    const dir = tempDir();
    const procs = Array.from({ length: 20 }, (_, i) => run(dir, `P${i}`, '1'));
    const codes = await Promise.all(procs.map((p) => p.done));
    expect(codes, procs.map((p) => p.stderr()).join('\n')).toEqual(Array(20).fill(0));
    const v = await Vault.open(configFor(dir));
    const list = await v.listSecrets();
    expect(list).toHaveLength(20);
    for (const m of list) expect((await v.decryptSecret(m.id)).reveal()).toMatch(/^value-P\d+-0$/);
    for (const f of walk(dir))
      if (f.endsWith('.json')) expect(() => JSON.parse(readFileSync(f, 'utf8'))).not.toThrow();
  }, 120_000);

  it('a writer SIGKILLed mid-loop leaves a loadable vault where every secret decrypts', async () => {
    const dir = tempDir();
    await Vault.init(configFor(dir), { provider: 'file' });
    const w = run(dir, 'K', 'loop');
    await new Promise<void>((resolve) => w.child.stdout.once('data', () => resolve()));
    await new Promise((r) => setTimeout(r, 300));
    w.child.kill('SIGKILL');
    await w.done;
    const v = await Vault.open(configFor(dir));
    const list = await v.listSecrets();
    expect(list.length).toBeGreaterThan(0);
    for (const m of list) expect((await v.decryptSecret(m.id)).reveal()).toMatch(/^(value|rotated)-K-\d+$/);
    await v.createSecret({ name: 'AFTER', value: 'x', scope: { kind: 'global' } });
  }, 120_000);
});

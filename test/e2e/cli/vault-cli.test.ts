// The vault and secrets commands as a user runs them: real processes, a real vault dir, exit codes,
// human and -v output, and never a secret value in any output (run-cli asserts that on every call).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isolatedEnv, parseJson, registerSecret, runCli } from '../../support/run-cli.js';
import { tmpDir } from '../../support/tmp-dir.js';

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? [join(dir, e.name), ...walk(join(dir, e.name))] : [join(dir, e.name)],
  );
}

describe('aivault vault + secrets CLI', () => {
  const root = tmpDir();
  const vaultDir = join(root, 'vault');
  const env = isolatedEnv(vaultDir);
  const value = registerSecret('sk-e2e-cli-0123456789abcdef');

  it('auto-initializes on status with the file provider and shows a fingerprint, never the key', async () => {
    const res = await runCli(['status'], { env });
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('file');
    expect(res.stdout).toContain('unlocked');
    const json = parseJson<{ provider: string; kekFingerprint: string; dev: boolean }>(
      await runCli(['status', '-v'], { env }),
    );
    expect(json.provider).toBe('file');
    expect(json.kekFingerprint).toMatch(/^[0-9a-f]{8,}/);
    expect(json.dev).toBe(false);
    const key = readFileSync(join(vaultDir, 'kek.key'), 'utf8').trim();
    registerSecret(key);
  });

  it('creates a secret from stdin, lists metadata only, and pins registry names', async () => {
    const res = await runCli(['secrets', 'create', '--name', 'MY_TOKEN', '--value-stdin'], {
      env,
      input: `${value}\n`,
    });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('Secret created: MY_TOKEN');
    const list = parseJson<{ name: string; id: string }[]>(await runCli(['secrets', 'list', '-v'], { env }));
    expect(list.map((s) => s.name)).toContain('MY_TOKEN');
    expect(JSON.stringify(list)).not.toContain(value);
  });

  it('stores no plaintext anywhere in the vault and keeps files 0600 / dirs 0700', () => {
    for (const path of walk(vaultDir)) {
      const st = statSync(path);
      if (path.endsWith('.lock')) continue;
      if (st.isDirectory()) expect((st.mode & 0o777).toString(8), path).toBe('700');
      else {
        expect((st.mode & 0o777).toString(8), path).toBe('600');
        const bytes = readFileSync(path);
        expect(bytes.includes(Buffer.from(value)), path).toBe(false);
        expect(bytes.includes(Buffer.from(Buffer.from(value).toString('base64'))), path).toBe(false);
      }
    }
  });

  it('updates, rotates, attaches, detaches and deletes with audit events for each', async () => {
    const rotated = registerSecret('sk-e2e-cli-rotated-9876543210');
    expect(
      (await runCli(['secrets', 'update', '--id', 'MY_TOKEN', '--alias', 'primary'], { env })).code,
    ).toBe(0);
    expect((await runCli(['secrets', 'rotate', '--id', 'MY_TOKEN', '--value', rotated], { env })).code).toBe(
      0,
    );
    expect(
      (
        await runCli(
          ['secrets', 'attach-group', '--id', 'MY_TOKEN', '--workspace-id', 'w1', '--group-id', 'g1'],
          { env },
        )
      ).code,
    ).toBe(0);
    expect(
      (
        await runCli(
          ['secrets', 'detach-group', '--id', 'MY_TOKEN', '--workspace-id', 'w1', '--group-id', 'g1'],
          { env },
        )
      ).code,
    ).toBe(0);
    expect((await runCli(['secrets', 'delete', '--id', 'MY_TOKEN'], { env })).code).toBe(0);
    const events = parseJson<{ kind: string }[]>(await runCli(['audit', '-v', '--limit', '50'], { env }));
    const kinds = events.map((e) => e.kind);
    for (const kind of [
      'secret.create',
      'secret.update',
      'secret.rotate',
      'secret.attach_group',
      'secret.detach_group',
      'secret.delete',
    ]) {
      expect(kinds).toContain(kind);
    }
    expect(kinds[0]).toBe('secret.delete');
  });

  it('imports KEY=VALUE entries', async () => {
    const a = registerSecret('import-value-aaaaaaaa');
    const b = registerSecret('import-value-bbbbbbbb');
    const res = await runCli(['secrets', 'import', '--entry', `IMP_A=${a}`, '--entry', `IMP_B=${b}`], {
      env,
    });
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain('Imported 2 secrets');
  });

  it.each([
    [['secrets', 'create', '--name', 'X', '--value', 'v', '--scope', 'workspace'], 2, 'usage'],
    [['secrets', 'rotate', '--id', 'does-not-exist', '--value', 'v'], 1, 'not_found'],
    [['secrets', 'create', '--name', 'bad name!', '--value', 'v'], 2, 'usage'],
    [['nonsense-command'], 2, undefined],
    [['audit', '--limit', 'abc'], 2, 'usage'],
  ])('%j exits %i with a clear error and no stack trace', async (args, code, errorCode) => {
    const res = await runCli(args as string[], { env });
    expect(res.code).toBe(code);
    expect(res.stderr).not.toMatch(/\n\s+at .*:\d+:\d+/);
    if (errorCode) {
      const verbose = await runCli([...(args as string[]), '-v'], { env });
      expect(JSON.parse(verbose.stderr)).toMatchObject({ error: errorCode });
    }
  });

  it('rejects a second create with the same name as a conflict', async () => {
    const dup = registerSecret('dup-value-123456');
    expect((await runCli(['secrets', 'create', '--name', 'DUP', '--value', dup], { env })).code).toBe(0);
    const again = await runCli(['secrets', 'create', '--name', 'DUP', '--value', dup, '-v'], { env });
    expect(again.code).toBe(1);
    expect(JSON.parse(again.stderr)).toMatchObject({ error: 'conflict' });
  });

  it('shows --help on every command and a banner on the top level', async () => {
    const top = await runCli(['--help'], { env });
    expect(top.code).toBe(0);
    expect(top.stdout).toContain('Keys stay in the vault');
    for (const args of [
      ['secrets', 'create'],
      ['capability', 'policy', 'set'],
      ['invoke'],
      ['oauth', 'setup'],
    ]) {
      const res = await runCli([...args, '--help'], { env });
      expect(res.code, args.join(' ')).toBe(0);
      expect(res.stdout).toContain('Usage: aivault');
      expect(res.stdout).not.toContain('Keys stay in the vault');
    }
  });
});

describe('concurrent CLI writers', () => {
  it('20 parallel `secrets create` processes lose nothing', async () => {
    const vaultDir = join(tmpDir(), 'vault');
    const env = isolatedEnv(vaultDir);
    expect((await runCli(['status'], { env })).code).toBe(0);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        runCli(
          ['secrets', 'create', '--name', `PAR_${i}`, '--value', registerSecret(`parallel-value-${i}-xyz`)],
          {
            env,
            timeoutMs: 60_000,
          },
        ),
      ),
    );
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const list = parseJson<{ name: string }[]>(await runCli(['secrets', 'list', '-v'], { env }));
    expect(list.filter((s) => s.name.startsWith('PAR_'))).toHaveLength(20);
  }, 120_000);
});

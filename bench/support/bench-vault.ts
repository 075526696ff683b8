/**
 * A throwaway dev vault holding OPENAI_API_KEY, made with the built CLI, for the in-process
 * micro-benchmarks. Sets AIVAULT_DIR in this process (loadConfig reads the environment), so callers
 * import config-reading modules after calling it.
 */
import { mkdtempSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const CLI = resolve(import.meta.dirname, '../../dist/src/cli/main.js');

/** Use `existing` (a vault dir) when given, else create one; returns the vault dir. */
export function useBenchVault(tag: string, existing?: string): string {
  let vaultDir = existing;
  if (!vaultDir) {
    vaultDir = join(mkdtempSync(join(tmpdir(), `aivault-${tag}-`)), 'vault');
    const env = { ...process.env, AIVAULT_DIR: vaultDir, AIVAULTD_DISABLE: '1' };
    spawnSync(process.execPath, [CLI, 'init', '--dev'], { env });
    spawnSync(process.execPath, [CLI, 'secrets', 'create', '--name', 'OPENAI_API_KEY', '--value-stdin'], {
      env,
      input: `sk-${tag}-0123456789`,
    });
  }
  process.env.AIVAULT_DIR = vaultDir;
  delete process.env.AIVAULT_KEY;
  return vaultDir;
}

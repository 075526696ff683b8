/**
 * Process and vault helpers shared by the crash harness (harness.ts) and its OAuth write-back trials
 * (oauth-trial.ts): run the compiled CLI (optionally SIGKILLed after a delay), SIGKILL the vault's own
 * aivaultd (and nothing else), and check that a vault opens and every record in it decrypts.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../src/core/config/env.js';
import { Vault } from '../../src/stores/vault/index.js';
import { CLI } from '../support/run-cli.js';

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Run the CLI and SIGKILL it after `killAfterMs` (output discarded). */
export function runKilled(
  args: string[],
  env: Record<string, string>,
  input: string | undefined,
  killAfterMs: number,
): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'ignore', 'ignore'] });
    const t = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal });
    });
    child.stdin.end(input ?? '');
  });
}

/** Run the CLI to completion (SIGKILLed after `timeoutMs` if it hangs); stdout + stderr in `out`. */
export function run(
  args: string[],
  env: Record<string, string>,
  input?: string,
  timeoutMs = 120_000,
): Promise<Run & { out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(t);
      resolve({ code, signal, out });
    });
    child.stdin.end(input ?? '');
  });
}

/**
 * SIGKILL the aivaultd serving `vaultDir` (pid file in <vault>/run). Only a process whose command line
 * names this vault's socket is killed, so a stale pid file can never hit an unrelated process.
 * True when a daemon was killed.
 */
export function killDaemon(vaultDir: string): boolean {
  const socket = join(vaultDir, 'run', 'aivaultd.sock');
  let pid: number;
  try {
    pid = Number(readFileSync(join(vaultDir, 'run', 'aivaultd.pid'), 'utf8'));
    if (!(pid > 1)) return false;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    if (!cmdline.includes(socket)) return false;
    process.kill(pid, 'SIGKILL');
    return true;
  } catch {
    return false; // no daemon (yet), or it already exited
  }
}

/** name → the set of values it may hold (one when acknowledged). */
export type Expect = Map<string, { values: string[]; required: boolean }>;

/** Further checks on an open vault, given every secret's plaintext by name; returns a problem or undefined. */
export type ExtraCheck = (
  vault: Vault,
  plain: Map<string, string>,
) => Promise<string | undefined> | string | undefined;

/**
 * The vault opens; EVERY listed secret decrypts; expected secrets hold an allowed value; no record file is
 * left unlisted. `extra` runs further checks on the open vault. Returns the first problem found.
 */
export async function verifyVault(
  vaultDir: string,
  home: string,
  expected: Expect,
  extra?: ExtraCheck,
): Promise<string | undefined> {
  const config = loadConfig({ HOME: home, AIVAULT_DIR: vaultDir, AIVAULT_DISABLE_DISK_LOGS: '1' });
  let vault: Vault;
  try {
    vault = await Vault.open(config);
  } catch (e) {
    return `vault does not open: ${(e as Error).message}`;
  }
  try {
    return await checkOpenVault(vault, vaultDir, expected, extra);
  } catch (e) {
    return `vault does not read: ${(e as Error).message}`;
  } finally {
    vault.close();
  }
}

async function checkOpenVault(
  vault: Vault,
  vaultDir: string,
  expected: Expect,
  extra?: ExtraCheck,
): Promise<string | undefined> {
  const list = await vault.listSecrets();
  // name → plaintext, for every record (a torn or mis-sealed record fails here)
  const plain = new Map<string, string>();
  for (const meta of list) {
    const bytes = await vault.decryptSecret(meta.id).catch((e: Error) => e);
    if (bytes instanceof Error) return `secret ${meta.name} does not decrypt: ${bytes.message}`;
    plain.set(meta.name, bytes.reveal());
    bytes.dispose();
  }
  for (const [name, exp] of expected) {
    const value = plain.get(name);
    if (value === undefined) {
      if (exp.required) return `acknowledged secret ${name} is missing`;
      continue;
    }
    if (!exp.values.includes(value)) return `secret ${name} holds an unexpected value`;
  }
  for (const f of readdirSync(join(vaultDir, 'secrets'))) {
    if (f.endsWith('.json') && !list.some((s) => `${s.id}.json` === f)) return `unlisted record ${f}`;
  }
  return await extra?.(vault, plain);
}

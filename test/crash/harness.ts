/**
 * Crash-safety harness: SIGKILLs `aivault` writers (secret create / rotate / rotate-master) and aivaultd
 * (while it appends audit events for in-flight calls) at random instants, then checks that:
 *  - the vault still opens (vault.json, kek.key, every secrets/*.json parse; no staging file is listed),
 *  - every ACKNOWLEDGED write (the CLI exited 0 before the kill) is present and decrypts to its value,
 *  - an unacknowledged write left either the old or the new state, never a third one,
 *  - the audit log still reads (`aivault audit`).
 * Used by test/crash/crash.test.ts (a few trials in `npm test`) and test/crash/run.ts (`npm run crash-test`,
 * ≥ 200 trials, writes bench/results/crash-<date>.json).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/env.js';
import { Vault } from '../../src/vault/index.js';
import { CLI, isolatedEnv } from '../support/run-cli.js';

export type Op = 'create' | 'rotate' | 'rotate-master' | 'daemon-kill';

export interface TrialResult {
  op: Op;
  killAfterMs: number;
  acknowledged: boolean;
  ok: boolean;
  problem?: string;
}

export interface CrashSummary {
  trials: number;
  byOp: Record<string, { trials: number; acknowledged: number; killedMidway: number; failures: number }>;
  failures: TrialResult[];
  durationMs: number;
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
}

function runKilled(
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

function run(args: string[], env: Record<string, string>, input?: string): Promise<Run & { out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (code, signal) => resolve({ code, signal, out }));
    child.stdin.end(input ?? '');
  });
}

/** name → the set of values it may hold (one when acknowledged). */
type Expect = Map<string, { values: string[]; required: boolean }>;

async function verify(vaultDir: string, home: string, expected: Expect): Promise<string | undefined> {
  const config = loadConfig({ HOME: home, AIVAULT_DIR: vaultDir, AIVAULT_DISABLE_DISK_LOGS: '1' });
  let vault: Vault;
  try {
    vault = await Vault.open(config);
  } catch (e) {
    return `vault does not open: ${(e as Error).message}`;
  }
  try {
    const list = await vault.listSecrets();
    const byName = new Map(list.map((s) => [s.name, s]));
    for (const [name, exp] of expected) {
      const meta = byName.get(name);
      if (!meta) {
        if (exp.required) return `acknowledged secret ${name} is missing`;
        continue;
      }
      const bytes = await vault.decryptSecret(meta.id).catch((e: Error) => e);
      if (bytes instanceof Error) return `secret ${name} does not decrypt: ${bytes.message}`;
      const value = bytes.reveal();
      bytes.dispose();
      if (!exp.values.includes(value)) return `secret ${name} holds an unexpected value`;
    }
    for (const f of readdirSync(join(vaultDir, 'secrets'))) {
      if (f.endsWith('.json') && !list.some((s) => `${s.id}.json` === f)) return `unlisted record ${f}`;
    }
  } finally {
    vault.close();
  }
  return undefined;
}

export async function runCrashTrials(
  trials: number,
  opts: { seed?: number; log?: (s: string) => void } = {},
): Promise<CrashSummary> {
  const started = Date.now();
  const home = mkdtempSync(join(tmpdir(), 'aivault-crash-'));
  const vaultDir = join(home, 'vault');
  const env = isolatedEnv(vaultDir, { HOME: home, AIVAULTD_WORKERS: '1' });
  const expected: Expect = new Map();
  const results: TrialResult[] = [];
  let rnd = opts.seed ?? Date.now();
  const rand = (): number => {
    rnd = (rnd * 1103515245 + 12345) % 2147483648;
    return rnd / 2147483648;
  };
  try {
    const init = await run(['init'], env);
    if (init.code !== 0) throw new Error(`init failed: ${init.out}`);
    // Seed one acknowledged secret and an invocable capability (for daemon-kill trials; no upstream needed:
    // calls fail fast with upstream_unreachable but are audited).
    const seedValue = `seed-${randomBytes(12).toString('hex')}`;
    const s = await run(['-v', 'secrets', 'create', '--name', 'SEED', '--value-stdin'], env, seedValue);
    if (s.code !== 0) throw new Error(`seed failed: ${s.out}`);
    expected.set('SEED', { values: [seedValue], required: true });
    const id = (JSON.parse(s.out) as { secret: { id: string } }).secret.id;
    await run(
      [
        'credential',
        'create',
        'c',
        '--provider',
        'c',
        '--secret-ref',
        `vault:secret:${id}`,
        '--auth',
        'header',
        '--header-name',
        'x-k',
        '--value-template',
        '{{secret}}',
        '--host',
        'crash.invalid',
      ],
      env,
    );
    await run(['capability', 'create', 'c/api', '--credential', 'c', '--method', 'GET', '--path', '/'], env);
    let n = 0;
    const ops: Op[] = ['create', 'rotate', 'rotate-master', 'daemon-kill'];
    for (let t = 0; t < trials; t++) {
      const op = ops[Math.floor(rand() * ops.length)] as Op;
      // CLI writes take ~0.4–2 s here (node start-up, key load, fsyncs): spread kills across all of it.
      const killAfterMs = Math.floor(20 + rand() * (op === 'daemon-kill' ? 700 : 2500));
      let acknowledged = false;
      if (op === 'create') {
        const name = `S${n++}`;
        const value = `v-${randomBytes(16).toString('hex')}`;
        const r = await runKilled(
          ['secrets', 'create', '--name', name, '--value-stdin'],
          env,
          value,
          killAfterMs,
        );
        acknowledged = r.code === 0;
        expected.set(name, { values: [value], required: acknowledged });
      } else if (op === 'rotate') {
        const names = [...expected.keys()].filter((k) => expected.get(k)!.required);
        const name = names[Math.floor(rand() * names.length)] as string;
        const value = `r-${randomBytes(16).toString('hex')}`;
        const r = await runKilled(
          ['secrets', 'rotate', '--id', name, '--value-stdin'],
          env,
          value,
          killAfterMs,
        );
        acknowledged = r.code === 0;
        const prev = expected.get(name)!;
        expected.set(name, { values: acknowledged ? [value] : [...prev.values, value], required: true });
      } else if (op === 'rotate-master') {
        const r = await runKilled(
          ['rotate-master', '--new-key', randomBytes(32).toString('base64')],
          env,
          undefined,
          killAfterMs,
        );
        acknowledged = r.code === 0;
      } else {
        // Several in-flight calls through an autostarted daemon, which is SIGKILLed mid-way.
        const calls = [1, 2, 3].map(() =>
          runKilled(['invoke', 'c/api', '--path', '/x', '--timeout-ms', '2000'], env, undefined, 5000),
        );
        await new Promise((r) => setTimeout(r, killAfterMs));
        try {
          const pid = Number(readFileSync(join(vaultDir, 'run', 'aivaultd.pid'), 'utf8'));
          if (pid > 1) process.kill(pid, 'SIGKILL');
          acknowledged = true;
        } catch {
          acknowledged = false; // daemon not up yet
        }
        await Promise.all(calls);
      }
      let problem = await verify(vaultDir, home, expected);
      if (!problem && op === 'daemon-kill') {
        const audit = await run(['audit', '--limit', '5'], env);
        if (audit.code !== 0) problem = `audit unreadable after daemon kill: ${audit.out.slice(0, 200)}`;
      }
      results.push({ op, killAfterMs, acknowledged, ok: !problem, ...(problem ? { problem } : {}) });
      opts.log?.(
        `trial ${t + 1}/${trials} ${op} kill@${killAfterMs}ms ack=${acknowledged} ${problem ?? 'ok'}`,
      );
      if (problem) {
        // Keep going from a consistent baseline: forget what we can no longer assert about.
        for (const [k, v] of expected) expected.set(k, { ...v, required: false });
      }
    }
  } finally {
    try {
      const pid = Number(readFileSync(join(vaultDir, 'run', 'aivaultd.pid'), 'utf8'));
      if (pid > 1) process.kill(pid, 'SIGKILL');
    } catch {
      // none
    }
    rmSync(home, { recursive: true, force: true });
  }
  const byOp: CrashSummary['byOp'] = {};
  for (const r of results) {
    const b = (byOp[r.op] ??= { trials: 0, acknowledged: 0, killedMidway: 0, failures: 0 });
    b.trials++;
    if (r.acknowledged) b.acknowledged++;
    else b.killedMidway++;
    if (!r.ok) b.failures++;
  }
  return {
    trials: results.length,
    byOp,
    failures: results.filter((r) => !r.ok),
    durationMs: Date.now() - started,
  };
}

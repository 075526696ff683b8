/**
 * Runs the compiled `aivault` CLI as a real child process. Every run's stdout and stderr are checked
 * against every secret value any test registered (`registerSecret`): a leak fails the test that caused
 * it, wherever it happens — the suite-wide "no command ever prints a secret" assertion.
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';

export const CLI = resolve('dist/src/cli-bundle/main.js');
export const DAEMON = resolve('dist/src/front/main.js');

const knownSecrets = new Set<string>();

/** Register a value that must never appear in any CLI output. */
export function registerSecret(value: string): string {
  knownSecrets.add(value);
  return value;
}

export function assertNoSecret(text: string, where: string): void {
  for (const secret of knownSecrets) {
    if (secret.length >= 6 && text.includes(secret)) {
      throw new Error(`secret value leaked in ${where}`);
    }
  }
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: Record<string, string | undefined>;
  input?: string;
  timeoutMs?: number;
  cwd?: string;
  /** With AIVAULTD_DISABLE=1: leave a running aivaultd up (the CLI must then refuse). */
  keepDaemon?: boolean;
}

/** Environment for an isolated vault: no inherited AIVAULT* variables, no colour, no autostart surprises. */
export function isolatedEnv(
  vaultDir: string,
  extra: Record<string, string | undefined> = {},
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith('AIVAULT')) env[k] = v;
  }
  env.AIVAULT_DIR = vaultDir;
  env.NO_COLOR = '1';
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/**
 * In-process invocation is refused while aivaultd serves the vault (the rate-limit bypass of seed 002),
 * so a test that compares the two modes on one vault stops the autostarted daemon first: the next
 * daemon-mode call starts it again. `keepDaemon` keeps it (to test the refusal itself).
 */
async function stopDaemonForInProcess(env: Record<string, string | undefined>): Promise<void> {
  if (env.AIVAULTD_DISABLE !== '1' || !env.AIVAULT_DIR) return;
  const { stopDaemon } = await import('../../src/cli/commands/daemon.js');
  await stopDaemon(env.AIVAULTD_SOCKET ?? join(env.AIVAULT_DIR, 'run', 'aivaultd.sock')).catch(
    () => undefined,
  );
}

export async function runCli(args: readonly string[], opts: RunOptions = {}): Promise<CliResult> {
  if (!opts.keepDaemon) await stopDaemonForInProcess(opts.env ?? process.env);
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      try {
        assertNoSecret(stdout, `stdout of aivault ${args.join(' ')}`);
        assertNoSecret(stderr, `stderr of aivault ${args.join(' ')}`);
      } catch (err) {
        reject(err as Error);
        return;
      }
      resolvePromise({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Parse `-v` JSON output, failing with the CLI's stderr when it is not JSON. */
export function parseJson<T = unknown>(result: CliResult): T {
  try {
    return JSON.parse(result.stdout) as T;
  } catch {
    throw new Error(`expected JSON on stdout (exit ${result.code}); stderr: ${result.stderr}`);
  }
}

/** argv for `aivault credential create` with header auth: the custom-credential shape most tests create. */
export function headerCredentialArgs(c: {
  readonly id: string;
  /** Default: the id. */
  readonly provider?: string;
  readonly secretRef: string;
  /** Default: authorization. */
  readonly header?: string;
  /** Default: `Bearer {{secret}}`. */
  readonly template?: string;
  readonly host: string;
}): string[] {
  return [
    'credential',
    'create',
    c.id,
    '--provider',
    c.provider ?? c.id,
    '--secret-ref',
    c.secretRef,
    '--auth',
    'header',
    '--header-name',
    c.header ?? 'authorization',
    '--value-template',
    c.template ?? 'Bearer {{secret}}',
    '--host',
    c.host,
  ];
}

/**
 * Runs CLI commands inside aivaultd's crypto worker (the only thread that may hold the KEK), so that while
 * the daemon serves a vault it is the vault's only writer and operator actions are authorised in one
 * place. Which commands exist and which role may run them comes from src/cli/command-table.ts:
 *   - caller socket (system mode): metadata reads only; every write is `operator_auth_required`;
 *   - operator socket (system mode): everything (the OS already proved who connected: only the daemon
 *     user and root can open it);
 *   - owner socket (user mode): reads, and writes with operator authentication, which on a passphrase
 *     vault is the passphrase itself (checked by deriving the KEK: nothing weaker than the key proves
 *     it). Other providers in user mode keep their key where same-user code can read it, so there is no
 *     secret an operator holds that a caller does not: status/init say so (docs/security.md).
 * Commands run one at a time: they read-modify-write vault files and share the operator-vault hook.
 */
import { AivaultError, isAivaultError } from '../core/errors.js';
import type { Config } from '../core/config/env.js';
import {
  APPROVAL_COMMANDS,
  APPROVAL_DECISIONS,
  COMMAND_MODULES,
  OPERATOR_READ_COMMANDS,
  WRITE_COMMANDS,
  daemonRunnable,
  type CommandModule,
} from '../cli/command-table.js';
import type { CliContext, CommandFn, CommandResult } from '../cli/context.js';
import { painter } from '../cli/output.js';
import { withOperatorVault } from '../cli/secret-input.js';
import { readVaultMeta, Vault, vaultPaths } from '../stores/vault/index.js';
import type { CommandOptValue } from '../core/protocol/frames.js';

/** Who is on the other end of the socket a command frame came in on. */
export type SocketRole = 'owner' | 'operator' | 'caller';

export interface CommandJob {
  readonly role: SocketRole;
  readonly command: string;
  readonly args: readonly string[];
  readonly opts: Readonly<Record<string, CommandOptValue>>;
  readonly color: boolean;
  readonly passphrase?: string;
}

export type CommandOutput = Record<string, string | number | boolean | null>;

/** Human label of a command key for messages: `secrets.create` → `secrets create`. */
export function commandLabel(key: string): string {
  const [mod, name] = key.split('.');
  return `${mod} ${(name ?? '').replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`
    .replace('vault ', '')
    .replace(/ remove$/, ' delete');
}

/** Streams a command must never use inside the daemon (prompts happen in the CLI before the frame). */
function noStream(): never {
  throw new AivaultError('usage', 'no terminal inside aivaultd: give the value with a flag or stdin');
}

function daemonContext(config: Config, color: boolean): CliContext {
  const stream = new Proxy({}, { get: () => noStream }) as never;
  return { config, verbose: false, color, p: painter(color), stdout: stream, stderr: stream, stdin: stream };
}

export function operatorAuthRequired(key: string, why: string, needs?: string): AivaultError {
  return new AivaultError('operator_auth_required', `${commandLabel(key)} is an operator action: ${why}`, {
    action: commandLabel(key),
    ...(needs !== undefined ? { needs } : {}),
  });
}

export class CommandExecutor {
  readonly #config: Config;
  #tail: Promise<unknown> = Promise.resolve();
  /** Called after a passphrase rotate-master so the daemon stays unlocked under the new passphrase. */
  readonly #onPassphraseRotated: ((passphrase: string) => Promise<unknown>) | undefined;
  /**
   * Called after every write command (also a failed one: it may have written part), before its reply
   * goes out: the daemon bumps the vault generation here, so the caller's next invoke sees the change.
   */
  readonly #afterWrite: (() => void) | undefined;

  constructor(
    config: Config,
    opts: { onPassphraseRotated?: (passphrase: string) => Promise<unknown>; afterWrite?: () => void } = {},
  ) {
    this.#config = config;
    this.#onPassphraseRotated = opts.onPassphraseRotated;
    this.#afterWrite = opts.afterWrite;
  }

  run(job: CommandJob): Promise<CommandOutput> {
    const exec = (): Promise<CommandOutput> =>
      WRITE_COMMANDS.has(job.command) ? this.#exec(job).finally(() => this.#afterWrite?.()) : this.#exec(job);
    const next = this.#tail.then(exec, exec);
    this.#tail = next.catch(() => undefined);
    return next;
  }

  /** The operator's proof for a write; resolves to a vault holding the KEK when the proof derived it. */
  async #authorize(job: CommandJob): Promise<Vault | undefined> {
    const key = job.command;
    const write = WRITE_COMMANDS.has(key) || APPROVAL_DECISIONS.has(key);
    if (!write && !OPERATOR_READ_COMMANDS.has(key)) return undefined;
    if (job.role === 'caller') {
      throw operatorAuthRequired(
        key,
        'this socket is for callers (agents), who may only invoke capabilities and read metadata; run it as the operator (sudo aivault …)',
      );
    }
    if (job.role === 'operator' || !write) return undefined;
    const meta = await readVaultMeta(vaultPaths(this.#config));
    if (meta.provider.kind !== 'passphrase') return undefined;
    if (job.passphrase === undefined) {
      throw operatorAuthRequired(
        key,
        'give the vault passphrase (terminal prompt, --passphrase-stdin or --passphrase)',
        'passphrase',
      );
    }
    try {
      return await Vault.open(this.#config, {
        autoInit: false,
        passphrase: job.passphrase,
        actor: 'operator',
      });
    } catch (err) {
      if (isAivaultError(err) && err.code === 'vault_unavailable') {
        throw operatorAuthRequired(key, 'the passphrase is wrong', 'passphrase');
      }
      throw err;
    }
  }

  async #exec(job: CommandJob): Promise<CommandOutput> {
    const key = job.command;
    if (!daemonRunnable(key)) {
      throw new AivaultError('invalid_request', `aivaultd does not run "${key.slice(0, 60)}"`);
    }
    const operatorVault = await this.#authorize(job);
    if (APPROVAL_COMMANDS.has(key)) {
      // Authorised: the main thread, which holds the pending approvals, runs it (approval-ops.ts).
      operatorVault?.close();
      return { authorized: true };
    }
    const [mod, name] = key.split('.') as [CommandModule, string];
    const loaded = (await COMMAND_MODULES[mod]()) as Record<string, unknown>;
    const fn = loaded[name] as CommandFn | undefined;
    if (typeof fn !== 'function') throw new AivaultError('internal', `command handler ${key} is missing`);
    const ctx = daemonContext(this.#config, job.color);
    let result: CommandResult | undefined;
    try {
      result = await withOperatorVault(operatorVault, () => fn(ctx, job.args, job.opts));
    } finally {
      operatorVault?.close();
    }
    const newPassphrase = job.opts.newPassphrase;
    if (key === 'vault.rotateMaster' && typeof newPassphrase === 'string') {
      await this.#onPassphraseRotated?.(newPassphrase);
    }
    if (result === undefined) return { json: 'null', human: '', notice: null, exitCode: 0 };
    return {
      json: JSON.stringify(result.json ?? null),
      human: result.silent ? '' : result.human(ctx.p),
      notice: result.notice ?? null,
      exitCode: result.exitCode ?? 0,
    };
  }
}

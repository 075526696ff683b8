/**
 * Where a CLI command runs, and with what operator proof. While aivaultd serves the vault it is the
 * only writer: a write (command-table.ts) is sent to it as a `command` frame; in system mode every
 * command that touches the vault is, because this process cannot read the vault at all. Values that a
 * command would read from stdin or a prompt are read here first, so the daemon never needs a terminal.
 * Without a daemon a write runs in this process, behind the same passphrase check.
 */
import { AivaultError, isAivaultError } from '../core/errors.js';
import {
  APPROVAL_COMMANDS,
  COMMAND_MODULES,
  WRITE_COMMANDS,
  commandKey,
  daemonRunnable,
  type CommandModule,
} from './command-table.js';
import type { CliContext, CommandFn, CommandOptions, CommandResult } from './context.js';
import { optBool, optList, optString } from './context.js';
import { promptHidden, readAllStdin, readSecretValue, withOperatorVault } from './secret-input.js';
import type { CommandOptValue } from '../core/protocol/frames.js';
import type { DaemonClient } from '../core/protocol/client.js';
import type { Vault } from '../stores/vault/index.js';

/** Options that only steer this process and are never sent to the daemon. */
const LOCAL_ONLY = new Set([
  'verbose',
  'passphrase',
  'passphraseStdin',
  'valueStdin',
  'valueFile',
  'fromStdin',
]);

/** Commands whose value is prompted for when no flag gives it. */
const VALUE_COMMANDS = new Set(['secrets.create', 'secrets.rotate']);

interface Prepared {
  readonly opts: Record<string, CommandOptValue>;
  readonly passphrase: string | undefined;
}

/** Resolve every stdin/prompt input now; what remains are plain option values. */
async function prepare(ctx: CliContext, key: string, opts: CommandOptions): Promise<Prepared> {
  const stdinUsers = ['valueStdin', 'fromStdin', 'passphraseStdin'].filter((k) => optBool(opts, k));
  if (stdinUsers.length > 1) {
    throw new AivaultError(
      'usage',
      'only one of --value-stdin, --from-stdin and --passphrase-stdin can read stdin',
    );
  }
  const out: Record<string, CommandOptValue> = {};
  for (const [k, v] of Object.entries(opts)) {
    if (LOCAL_ONLY.has(k) || v === undefined) continue;
    if (typeof v === 'string' || typeof v === 'boolean') out[k] = v;
    else if (Array.isArray(v)) out[k] = v.filter((x): x is string => typeof x === 'string');
  }
  // The value is read here (flag, stdin, file or prompt): the daemon never reads a caller-named file.
  if (VALUE_COMMANDS.has(key)) out.value = await readSecretValue(ctx, opts, 'Secret value');
  if (optBool(opts, 'fromStdin')) {
    const entries = optList(opts, 'entry');
    for (const line of (await readAllStdin(ctx.stdin)).split(/\r?\n/)) {
      const trimmed = line.trim();
      if (trimmed && !trimmed.startsWith('#')) entries.push(trimmed.replace(/^export\s+/, ''));
    }
    out.entry = entries;
  }
  let passphrase = optString(opts, 'passphrase');
  if (optBool(opts, 'passphraseStdin')) {
    if (passphrase !== undefined)
      throw new AivaultError('usage', 'give --passphrase or --passphrase-stdin, not both');
    passphrase = (await readAllStdin(ctx.stdin)).split(/\r?\n/)[0] ?? '';
  }
  return { opts: out, passphrase };
}

/** Ask on the terminal, or explain how a script gives the passphrase. */
async function askPassphrase(ctx: CliContext, cause: AivaultError): Promise<string> {
  try {
    return await promptHidden(ctx, 'Vault passphrase');
  } catch (err) {
    if (isAivaultError(err) && err.code === 'usage' && err.message.includes('no terminal')) {
      throw new AivaultError(
        'operator_auth_required',
        `${cause.message} (no terminal to prompt on: use --passphrase-stdin)`,
        cause.details,
      );
    }
    throw err;
  }
}

function fromDaemon(data: Record<string, string | number | boolean | null>): CommandResult {
  const human = typeof data.human === 'string' ? data.human : '';
  return {
    json: typeof data.json === 'string' ? (JSON.parse(data.json) as unknown) : null,
    human: () => human,
    ...(typeof data.notice === 'string' ? { notice: data.notice } : {}),
    ...(typeof data.exitCode === 'number' && data.exitCode !== 0 ? { exitCode: data.exitCode } : {}),
  };
}

async function viaDaemon(
  ctx: CliContext,
  client: DaemonClient,
  key: string,
  positionals: readonly string[],
  prepared: Prepared,
): Promise<CommandResult> {
  const send = async (passphrase: string | undefined): ReturnType<DaemonClient['command']> => {
    if (passphrase !== undefined) {
      const { assertTrustedDaemon } = await import('./daemon-link.js');
      await assertTrustedDaemon(ctx.config);
    }
    return client.command({
      command: key,
      args: [...positionals],
      opts: prepared.opts,
      color: ctx.color,
      ...(passphrase !== undefined ? { passphrase } : {}),
    });
  };
  try {
    return fromDaemon(await send(prepared.passphrase));
  } catch (err) {
    const needsPassphrase =
      isAivaultError(err) &&
      err.code === 'operator_auth_required' &&
      err.details?.needs === 'passphrase' &&
      prepared.passphrase === undefined;
    if (!needsPassphrase) throw err;
    return fromDaemon(await send(await askPassphrase(ctx, err)));
  } finally {
    client.close();
  }
}

/** A running daemon for this vault, or undefined (never autostarted: a write must not start one). */
async function runningDaemon(ctx: CliContext): Promise<DaemonClient | undefined> {
  const { connectDaemon } = await import('./daemon-link.js');
  try {
    return await connectDaemon(ctx.config, { autostart: false });
  } catch (err) {
    if (isAivaultError(err) && err.code === 'daemon_unavailable') return undefined;
    throw err;
  }
}

/**
 * The vault unlocked in this process with the operator's passphrase (a wrong one is
 * `operator_auth_required` for `key`). While open it also verifies the policy seal for this process.
 */
export async function openWithPassphrase(ctx: CliContext, key: string, passphrase: string): Promise<Vault> {
  const { Vault } = await import('../stores/vault/index.js');
  try {
    return await Vault.open(ctx.config, { autoInit: false, passphrase });
  } catch (err) {
    if (isAivaultError(err) && err.code === 'vault_unavailable') {
      const { operatorAuthRequired } = await import('../crypto-worker/operator-executor.js');
      throw operatorAuthRequired(key, 'the passphrase is wrong', 'passphrase');
    }
    throw err;
  }
}

/** In this process: a write on a passphrase vault first proves the passphrase (deriving the KEK). */
async function locally(
  ctx: CliContext,
  key: string,
  fn: CommandFn,
  positionals: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult | undefined> {
  if (!WRITE_COMMANDS.has(key)) return fn(ctx, positionals, opts);
  const { readVaultMeta, vaultPaths } = await import('../stores/vault/index.js');
  const meta = await readVaultMeta(vaultPaths(ctx.config)).catch(() => undefined);
  if (meta?.provider.kind !== 'passphrase') return fn(ctx, positionals, opts);
  const prepared = await prepare(ctx, key, opts);
  const { operatorAuthRequired } = await import('../crypto-worker/operator-executor.js');
  const passphrase =
    prepared.passphrase ??
    (await askPassphrase(ctx, operatorAuthRequired(key, 'give the vault passphrase', 'passphrase')));
  const vault = await openWithPassphrase(ctx, key, passphrase);
  try {
    return await withOperatorVault(vault, () => fn(ctx, positionals, prepared.opts));
  } finally {
    vault.close();
  }
}

export async function runCommand(
  ctx: CliContext,
  module: CommandModule,
  name: string,
  positionals: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult | undefined> {
  const key = commandKey(module, name);
  const system = ctx.config.system !== undefined;
  // Pending approvals exist only in the daemon (`--watch` talks to it itself, commands/approvals.ts).
  const watchHere = APPROVAL_COMMANDS.has(key) && optBool(opts, 'watch');
  const daemonOnly = APPROVAL_COMMANDS.has(key) && !watchHere;
  if (!watchHere && (system ? daemonRunnable(key) : WRITE_COMMANDS.has(key) || daemonOnly)) {
    const client = await runningDaemon(ctx);
    if (client) {
      let prepared: Prepared;
      try {
        prepared = await prepare(ctx, key, opts);
      } catch (err) {
        client.close();
        throw err;
      }
      return viaDaemon(ctx, client, key, positionals, prepared);
    }
    if (system) {
      throw new AivaultError(
        'daemon_unavailable',
        `aivaultd (system mode) is not answering on ${ctx.config.socketPath}: sudo systemctl start aivaultd`,
      );
    }
  }
  const loaded = (await COMMAND_MODULES[module]()) as Record<string, unknown>;
  const fn = loaded[name] as CommandFn | undefined;
  if (typeof fn !== 'function') throw new AivaultError('internal', `command handler ${name} is missing`);
  try {
    return await locally(ctx, key, fn, positionals, opts);
  } catch (err) {
    // A sealed vault's policy files can be read only with the key: this process has none, but a running
    // aivaultd that holds it verifies the seal and answers the read (stores/vault/policy-seal.ts).
    const sealedAndLocked =
      isAivaultError(err) && err.code === 'vault_unavailable' && err.details?.policySeal === true;
    if (!sealedAndLocked || !daemonRunnable(key) || WRITE_COMMANDS.has(key)) throw err;
    const client = await runningDaemon(ctx);
    if (!client) throw err;
    return viaDaemon(ctx, client, key, positionals, await prepare(ctx, key, opts));
  }
}

/**
 * For a command that performs operator actions on the caller's behalf (`aivault run` mints and revokes
 * its token): the passphrase once, up front, when this vault needs one; undefined otherwise.
 */
export async function operatorPassphrase(ctx: CliContext, opts: CommandOptions): Promise<string | undefined> {
  if (ctx.config.system) return undefined;
  const { readVaultMeta, vaultPaths } = await import('../stores/vault/index.js');
  const meta = await readVaultMeta(vaultPaths(ctx.config)).catch(() => undefined);
  if (meta?.provider.kind !== 'passphrase') return undefined;
  const given = optString(opts, 'passphrase');
  if (given !== undefined) return given;
  const { operatorAuthRequired } = await import('../crypto-worker/operator-executor.js');
  return askPassphrase(ctx, operatorAuthRequired('token.mint', 'give the vault passphrase', 'passphrase'));
}

/**
 * Reads a secret value from --value, --value-stdin, --value-file or a hidden prompt, so values can stay out of shell
 * history. The value is returned to the caller only to be encrypted; it is never echoed.
 */
import { openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { ReadStream } from 'node:tty';
import { AivaultError } from '../core/errors.js';
import type { Vault } from '../stores/vault/index.js';
import type { CliContext, CommandOptions } from './context.js';
import { optBool, optString } from './context.js';

export async function readAllStdin(stdin: NodeJS.ReadStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin)
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** The terminal to prompt on: stdin when it is one, else the controlling terminal (stdin may carry a value). */
function openTerminal(
  stdin: NodeJS.ReadStream,
): { input: NodeJS.ReadStream & { setRawMode(m: boolean): unknown }; close(): void } | undefined {
  if (stdin.isTTY)
    return {
      input: stdin as NodeJS.ReadStream & { setRawMode(m: boolean): unknown },
      close: () => undefined,
    };
  try {
    const fd = openSync('/dev/tty', 'r');
    const input = new ReadStream(fd);
    return { input, close: () => input.destroy() };
  } catch {
    return undefined;
  }
}

/** Prompt without echo (raw mode): each keystroke is consumed, nothing is written but the label. */
export function promptHidden(ctx: CliContext, label: string): Promise<string> {
  const { stderr } = ctx;
  return new Promise((resolve, reject) => {
    const term = openTerminal(ctx.stdin);
    if (!term) {
      reject(
        new AivaultError('usage', `${label}: no terminal to prompt on (give the value with a flag or stdin)`),
      );
      return;
    }
    const stdin = term.input;
    // Raw mode (no echo) BEFORE the prompt appears: text typed as soon as the prompt shows must not echo.
    stdin.setRawMode(true);
    stderr.write(`${label}: `);
    let value = '';
    stdin.resume();
    stdin.setEncoding('utf8');
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n') {
          done();
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          done();
          reject(new AivaultError('usage', 'cancelled'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    const done = (): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      term.close();
      stderr.write('\n');
    };
    stdin.on('data', onData);
  });
}

/** `--value-file`: the file's text (e.g. an OAuth token JSON); errors name the file, never its content. */
async function readValueFile(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new AivaultError(
      'usage',
      `--value-file ${path}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`,
    );
  }
}

export async function readSecretValue(
  ctx: CliContext,
  opts: CommandOptions,
  label = 'Secret value',
): Promise<string> {
  const inline = optString(opts, 'value');
  const fromStdin = optBool(opts, 'valueStdin');
  const file = optString(opts, 'valueFile');
  if ([inline !== undefined, fromStdin, file !== undefined].filter(Boolean).length > 1) {
    throw new AivaultError('usage', 'give the value with one of --value, --value-stdin or --value-file');
  }
  let value: string;
  if (inline !== undefined) value = inline;
  else if (fromStdin) value = (await readAllStdin(ctx.stdin)).replace(/\r?\n$/, '');
  else if (file !== undefined) value = (await readValueFile(file)).replace(/\r?\n$/, '');
  else value = await promptHidden(ctx, label);
  if (value === '') throw new AivaultError('usage', 'the secret value is empty');
  return value;
}

/**
 * The vault an operator command runs against when its authentication already derived the KEK (the
 * passphrase checked by aivaultd's command executor, or by the CLI before an in-process write): the
 * command must not ask again. Commands run one at a time in both places, so one slot is enough.
 */
let operatorVault: Vault | undefined;

export async function withOperatorVault<T>(vault: Vault | undefined, run: () => Promise<T>): Promise<T> {
  const previous = operatorVault;
  operatorVault = vault;
  try {
    return await run();
  } finally {
    operatorVault = previous;
  }
}

/**
 * Open the vault for a command that encrypts (create/rotate/import/rotate-master). A passphrase vault is
 * unlocked only inside aivaultd, so this process asks for the passphrase on the terminal; without one it
 * fails with a clear `vault_unavailable` instead of a half-done write.
 */
export async function openVaultForWrite(ctx: CliContext): Promise<Vault> {
  if (operatorVault !== undefined) return operatorVault;
  // Loaded here, not at the top: the router imports this module on every command, invoke included.
  const { Vault } = await import('../stores/vault/index.js');
  const vault = await Vault.open(ctx.config);
  if (!vault.isLocked() || (await vault.status()).provider !== 'passphrase') return vault;
  let passphrase: string;
  try {
    passphrase = await promptHidden(ctx, 'Vault passphrase');
  } catch (err) {
    if (err instanceof AivaultError && err.code === 'usage' && err.message.includes('no terminal')) {
      throw new AivaultError(
        'vault_unavailable',
        'this passphrase vault is locked in this process: run the command in a terminal to enter the passphrase',
      );
    }
    throw err;
  }
  await vault.unlock(passphrase);
  return vault;
}

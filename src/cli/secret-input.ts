/**
 * Reads a secret value from --value, --value-stdin or a hidden prompt, so values can stay out of shell
 * history. The value is returned to the caller only to be encrypted; it is never echoed.
 */
import { AivaultError } from '../errors.js';
import type { CliContext, CommandOptions } from './context.js';
import { optBool, optString } from './context.js';

export async function readAllStdin(stdin: NodeJS.ReadStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin)
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString('utf8');
}

/** Prompt without echo (raw mode): each keystroke is consumed, nothing is written but the label. */
export function promptHidden(ctx: CliContext, label: string): Promise<string> {
  const { stdin, stderr } = ctx;
  return new Promise((resolve, reject) => {
    if (!stdin.isTTY) {
      reject(
        new AivaultError('usage', `${label}: no value given (use --value, --value-stdin or a terminal)`),
      );
      return;
    }
    stderr.write(`${label}: `);
    let value = '';
    stdin.setRawMode(true);
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
      stderr.write('\n');
    };
    stdin.on('data', onData);
  });
}

export async function readSecretValue(
  ctx: CliContext,
  opts: CommandOptions,
  label = 'Secret value',
): Promise<string> {
  const inline = optString(opts, 'value');
  const fromStdin = optBool(opts, 'valueStdin');
  if (inline !== undefined && fromStdin) {
    throw new AivaultError('usage', 'give the value with either --value or --value-stdin, not both');
  }
  let value: string;
  if (inline !== undefined) value = inline;
  else if (fromStdin) value = (await readAllStdin(ctx.stdin)).replace(/\r?\n$/, '');
  else value = await promptHidden(ctx, label);
  if (value === '') throw new AivaultError('usage', 'the secret value is empty');
  return value;
}

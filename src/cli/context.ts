/**
 * What every command receives: frozen config, output settings and the streams. Commands return a
 * `CommandResult` (JSON + human rendering) and never print secret values.
 */
import { AivaultError } from '../core/errors.js';
import type { Config } from '../core/config/env.js';
import type { Painter } from './output.js';
import type { CommandModule } from './command-table.js';

export interface CliContext {
  readonly config: Config;
  readonly verbose: boolean;
  readonly color: boolean;
  readonly p: Painter;
  readonly stdout: NodeJS.WriteStream;
  readonly stderr: NodeJS.WriteStream;
  readonly stdin: NodeJS.ReadStream;
}

export interface CommandResult {
  /** What `-v` prints. */
  readonly json: unknown;
  /** What a person sees by default. */
  readonly human: (p: Painter) => string;
  /** Raw bytes to write instead of `human` (invoke's body, byte for byte). */
  readonly raw?: Uint8Array;
  /** Output was already written (streaming). */
  readonly silent?: boolean;
  /** One line for stderr (e.g. an upstream error status). */
  readonly notice?: string;
  /** Non-zero when the command ran but its outcome is a failure (e.g. upstream HTTP 4xx/5xx). */
  readonly exitCode?: number;
}

export type CommandOptions = Readonly<Record<string, unknown>>;

export type CommandFn = (
  ctx: CliContext,
  positionals: readonly string[],
  opts: CommandOptions,
) => Promise<CommandResult | undefined>;

export type Runner = (
  module: CommandModule,
  name: string,
  positionals: readonly string[],
  opts: CommandOptions,
) => Promise<void>;

/** Typed option accessors: commander hands us `unknown`. */
export const optString = (opts: CommandOptions, key: string): string | undefined => {
  const v = opts[key];
  return typeof v === 'string' ? v : undefined;
};
export const optList = (opts: CommandOptions, key: string): string[] => {
  const v = opts[key];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
};
export const optBool = (opts: CommandOptions, key: string): boolean => opts[key] === true;

/** A non-negative integer flag value, or a usage error naming the flag. */
export function parseCount(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0)
    throw new AivaultError('usage', `${flag} must be a non-negative integer`);
  return n;
}

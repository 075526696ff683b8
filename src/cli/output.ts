/**
 * Human vs JSON output. Human output is coloured only on a TTY without NO_COLOR; `-v` prints JSON.
 * Nothing here ever receives a secret value: callers pass metadata only. `redactSecrets` is the last
 * line of defence for strings that embed query/path auth (URLs in planned output and errors).
 */
import pc from 'picocolors';
import type { WireError } from '../errors.js';

export interface OutputOptions {
  readonly verbose: boolean;
  readonly color: boolean;
}

export function detectColor(stream: NodeJS.WriteStream, noColor: boolean): boolean {
  return !noColor && stream.isTTY === true;
}

export interface Painter {
  bold(s: string): string;
  dim(s: string): string;
  green(s: string): string;
  red(s: string): string;
  yellow(s: string): string;
  cyan(s: string): string;
}

export function painter(color: boolean): Painter {
  const c = pc.createColors(color);
  return { bold: c.bold, dim: c.dim, green: c.green, red: c.red, yellow: c.yellow, cyan: c.cyan };
}

const ANSI = /\u001b\[[0-9;]*m/g;
const visibleLength = (s: string): number => s.replace(ANSI, '').length;

/** A plain aligned table: header row + rows. Cells are already painted. */
export function renderTable(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  p: Painter,
): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visibleLength(r[i] ?? ''))));
  const pad = (cell: string, i: number): string =>
    cell + ' '.repeat(Math.max(0, (widths[i] ?? 0) - visibleLength(cell)));
  const lines = [headers.map((h, i) => p.bold(pad(h, i))).join('  ')];
  for (const row of rows)
    lines.push(
      row
        .map((cell, i) => pad(cell, i))
        .join('  ')
        .trimEnd(),
    );
  return lines.join('\n');
}

/** Key/value block for `status`, `describe` and friends. */
export function renderFields(fields: readonly (readonly [string, string])[], p: Painter): string {
  const width = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${p.dim(k.padEnd(width))}  ${v}`).join('\n');
}

export function toJson(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

export function renderError(err: WireError, p: Painter): string {
  return `${p.red(p.bold('error'))} ${p.dim(`[${err.error}]`)} ${err.message}`;
}

/** Replace every occurrence of each secret (and its URL-encoded form) with `[redacted]`. */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) {
    if (secret.length < 4) continue;
    for (const form of new Set([secret, encodeURIComponent(secret)]))
      out = out.split(form).join('[redacted]');
  }
  return out;
}

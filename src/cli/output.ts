/**
 * Human vs JSON output. Human output is coloured only on a TTY without NO_COLOR; `-v` prints JSON.
 * Nothing here ever receives a secret value: callers pass metadata only. `redactSecrets` is the last
 * line of defence for strings that embed query/path auth (URLs in planned output and errors).
 */
import pc from 'picocolors';
import type { WireError } from '../core/errors.js';

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

/**
 * C0, DEL, C1, the Unicode line/paragraph separators and the bidi controls: characters that let text
 * taken from the vault, the audit log or an error move the cursor, clear the screen, start a fake line or
 * reorder what the reader sees. Hand-written because it is one regexp, and the output boundary needs it.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

const escapeChar = (c: string): string => {
  const code = c.charCodeAt(0);
  return NAMED[c] ?? (code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16)}`);
};

/** Make untrusted text printable on a terminal: every control character becomes a visible escape. */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, escapeChar);
}

/** escapeControl for text that may carry our own painter's SGR colour codes: those are kept. */
function escapeKeepingColor(text: string): string {
  let out = '';
  let last = 0;
  for (const m of text.matchAll(ANSI)) {
    out += escapeControl(text.slice(last, m.index)) + m[0];
    last = m.index + m[0].length;
  }
  return out + escapeControl(text.slice(last));
}

/**
 * A plain aligned table: header row + rows. Cells are already painted; any other control character in a
 * cell is escaped (a cell is one line).
 */
export function renderTable(
  headers: readonly string[],
  paintedRows: readonly (readonly string[])[],
  p: Painter,
): string {
  const rows = paintedRows.map((r) => r.map(escapeKeepingColor));
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
  return fields.map(([k, v]) => `${p.dim(k.padEnd(width))}  ${escapeKeepingColor(v)}`).join('\n');
}

export function toJson(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

export function renderError(err: WireError, p: Painter): string {
  return `${p.red(p.bold('error'))} ${p.dim(`[${escapeControl(err.error)}]`)} ${escapeControl(err.message)}`;
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

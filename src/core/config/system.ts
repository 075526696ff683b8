/**
 * System mode's layout (Linux): aivaultd runs as a dedicated user that alone can read the vault, agents
 * reach it through a group-accessible caller socket (invoke and metadata only), and the operator (root)
 * through an operator socket that only root and the daemon user can open. `aivault system install`
 * writes this file; the CLI and the daemon read it when AIVAULT_DIR is not set.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AivaultError } from '../errors.js';

export const DEFAULT_SYSTEM_CONFIG = '/etc/aivault/system.json';

export interface SystemLayout {
  readonly version: 1;
  readonly user: string;
  readonly group: string;
  readonly vaultDir: string;
  readonly runDir: string;
  readonly callerSocket: string;
  readonly operatorSocket: string;
}

const NAME_FIELDS = ['user', 'group'] as const;
const PATH_FIELDS = ['vaultDir', 'runDir', 'callerSocket', 'operatorSocket'] as const;
const KNOWN_FIELDS: ReadonlySet<string> = new Set(['version', ...NAME_FIELDS, ...PATH_FIELDS]);

/**
 * The layout file's shape, checked by hand: version 1, non-empty user/group, absolute paths, no other
 * keys. Not zod (used elsewhere): every CLI start reads this (via core/config/env.ts), and loading zod cost
 * `aivault invoke` more CPU than the call itself (issue 12).
 */
export function parseSystemLayout(raw: unknown): SystemLayout | undefined {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return undefined;
  const o = raw as Record<string, unknown>;
  if (o.version !== 1) return undefined;
  if (Object.keys(o).some((k) => !KNOWN_FIELDS.has(k))) return undefined;
  for (const f of NAME_FIELDS) if (typeof o[f] !== 'string' || o[f] === '') return undefined;
  for (const f of PATH_FIELDS) {
    const v = o[f];
    if (typeof v !== 'string' || !v.startsWith('/')) return undefined;
  }
  return o as unknown as SystemLayout;
}

/** The layout under an install root (`/` in production, a temp dir in tests). */
export function systemLayoutFor(root: string, user: string, group: string): SystemLayout {
  const r = resolve(root);
  const runDir = join(r, 'run', 'aivault');
  return {
    version: 1,
    user,
    group,
    vaultDir: join(r, 'var', 'lib', 'aivault', 'vault'),
    runDir,
    callerSocket: join(runDir, 'aivaultd.sock'),
    operatorSocket: join(runDir, 'operator.sock'),
  };
}

export function systemConfigPath(root: string): string {
  return join(resolve(root), 'etc', 'aivault', 'system.json');
}

/** Read the layout, or undefined when system mode is not installed. A broken file is an error, not "absent". */
export function readSystemLayout(path: string): SystemLayout | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AivaultError('storage_corrupt', `cannot read ${path}: ${(err as Error).message}`, {
      file: path,
    });
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new AivaultError('storage_corrupt', `${path} is not valid JSON`, { file: path });
  }
  const layout = parseSystemLayout(raw);
  if (!layout) {
    throw new AivaultError('storage_corrupt', `${path} is not a valid system-mode layout`, { file: path });
  }
  return layout;
}

/** The operator socket when this process may open it (root, the daemon user), else the caller socket. */
export function systemSocketFor(layout: SystemLayout): { socketPath: string; role: 'operator' | 'caller' } {
  try {
    accessSync(layout.operatorSocket, constants.R_OK | constants.W_OK);
    return { socketPath: layout.operatorSocket, role: 'operator' };
  } catch {
    return { socketPath: layout.callerSocket, role: 'caller' };
  }
}

/**
 * System mode's layout (Linux): aivaultd runs as a dedicated user that alone can read the vault, agents
 * reach it through a group-accessible caller socket (invoke and metadata only), and the operator (root)
 * through an operator socket that only root and the daemon user can open. `aivault system install`
 * writes this file; the CLI and the daemon read it when AIVAULT_DIR is not set.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { AivaultError } from '../errors.js';

export const DEFAULT_SYSTEM_CONFIG = '/etc/aivault/system.json';

const layoutSchema = z
  .object({
    version: z.literal(1),
    user: z.string().min(1),
    group: z.string().min(1),
    vaultDir: z.string().startsWith('/'),
    runDir: z.string().startsWith('/'),
    callerSocket: z.string().startsWith('/'),
    operatorSocket: z.string().startsWith('/'),
  })
  .strict();

export type SystemLayout = z.infer<typeof layoutSchema>;

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
  const parsed = layoutSchema.safeParse(raw);
  if (!parsed.success) {
    throw new AivaultError('storage_corrupt', `${path} is not a valid system-mode layout`, { file: path });
  }
  return parsed.data;
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

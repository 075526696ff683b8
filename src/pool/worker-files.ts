/**
 * Locates worker entry files (main thread, when the pool starts threads). Production (compiled): the
 * compiled entry under dist/.
 * Source mode (this module loaded as .ts under tsx/vitest): the entry's .ts file, loaded through
 * src/pool/tsx-boot.mjs, which registers tsx inside the thread (Node 20 ignores `--import` for workers).
 * So tests never depend on a possibly stale dist/ build.
 */
import { fileURLToPath } from 'node:url';

export interface WorkerEntry {
  /** File to start the thread with (absolute path). */
  readonly filename: string;
  /** Extra workerData the entry needs (source mode: the .ts module URL). */
  readonly bootData: Readonly<Record<string, string>>;
}

const SOURCE_MODE = import.meta.url.endsWith('.ts');

// Literal paths (no templates) so a tree-wide move can rewrite them like imports.
const SOURCE_BOOT = new URL('./tsx-boot.mjs', import.meta.url);
const ENTRIES = {
  'request-worker': {
    source: new URL('../request-worker/entry.ts', import.meta.url),
    built: new URL('../request-worker/entry.js', import.meta.url),
  },
  'crypto-worker': {
    source: new URL('../crypto-worker/entry.ts', import.meta.url),
    built: new URL('../crypto-worker/entry.js', import.meta.url),
  },
} as const;

export function workerEntry(name: keyof typeof ENTRIES): WorkerEntry {
  const entry = ENTRIES[name];
  if (SOURCE_MODE) {
    return { filename: fileURLToPath(SOURCE_BOOT), bootData: { __aivaultWorker: entry.source.href } };
  }
  return { filename: fileURLToPath(entry.built), bootData: {} };
}

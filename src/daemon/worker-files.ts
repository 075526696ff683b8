/**
 * Locates worker entry files. Production (compiled): dist/src/daemon/*.js → dist/workers/<name>.js.
 * Source mode (this module loaded as .ts under tsx/vitest): workers/<name>.ts loaded through
 * workers/tsx-boot.mjs, which registers tsx inside the thread (Node 20 ignores `--import` for workers).
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

export function workerEntry(name: 'request-worker' | 'crypto-worker'): WorkerEntry {
  if (SOURCE_MODE) {
    return {
      filename: fileURLToPath(new URL('../../workers/tsx-boot.mjs', import.meta.url)),
      bootData: { __aivaultWorker: new URL(`../../workers/${name}.ts`, import.meta.url).href },
    };
  }
  return { filename: fileURLToPath(new URL(`../../workers/${name}.js`, import.meta.url)), bootData: {} };
}

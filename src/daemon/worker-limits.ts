/**
 * V8 heap limits for aivaultd's worker threads (request workers and the crypto worker), read on the
 * daemon's main thread when the pool starts them. Why: without a limit each worker may grow to V8's
 * default old space (far beyond what a broker needs), and a leak in one worker would eat the machine
 * before anything notices; with it, a runaway worker dies with ERR_WORKER_OUT_OF_MEMORY and the pool
 * replaces it (issue 12: idle RSS ≤ 120 MB, ≤ 150 MB at 1,000 open streams). Request and response bodies
 * are Buffers (memory outside the V8 heap), so the limit bounds the JS objects, not the bytes relayed.
 */
import type { ResourceLimits } from 'node:worker_threads';
import { AivaultError } from '../errors.js';

export const WORKER_HEAP_ENV = 'AIVAULTD_WORKER_HEAP_MB';
export const DEFAULT_WORKER_HEAP_MB = 96;
/** Below this a worker cannot even load its modules and the pool would restart it forever. */
const MIN_WORKER_HEAP_MB = 32;

/** The limits for one worker: old space from $AIVAULTD_WORKER_HEAP_MB (default 96 MB). */
export function workerResourceLimits(env: NodeJS.ProcessEnv = process.env): ResourceLimits {
  const raw = env[WORKER_HEAP_ENV];
  if (raw === undefined || raw.trim() === '') return { maxOldGenerationSizeMb: DEFAULT_WORKER_HEAP_MB };
  const mb = Number(raw);
  if (!Number.isInteger(mb) || mb < MIN_WORKER_HEAP_MB) {
    throw new AivaultError(
      'usage',
      `${WORKER_HEAP_ENV}=${raw}: must be a whole number of megabytes, at least ${MIN_WORKER_HEAP_MB}`,
    );
  }
  return { maxOldGenerationSizeMb: mb };
}

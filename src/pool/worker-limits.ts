/**
 * V8 heap limits for aivaultd's worker threads (request workers and the crypto worker), read on the
 * daemon's main thread when the pool starts them. Why: without a limit each worker may grow to V8's
 * default old space (far beyond what a broker needs), and a leak in one worker would eat the machine
 * before anything notices; with it, a runaway worker dies with ERR_WORKER_OUT_OF_MEMORY and the pool
 * replaces it (issue 12: idle RSS ≤ 120 MB, ≤ 150 MB at 1,000 open streams). Request and response bodies
 * are Buffers (memory outside the V8 heap), so the limit bounds the JS objects, not the bytes relayed.
 *
 * Young generation (`maxYoungGenerationSizeMb`, $AIVAULTD_WORKER_YOUNG_MB, default 16): V8 sizes each
 * isolate's new space up to 3 × 16 MB semi-spaces on 64-bit and grows it under load; a bounded nursery
 * saves tens of MB per worker under load (bench/PROFILE.md, Memory). 16, not 8: once calls were packed
 * onto as few workers as keep up, one worker carries the load, and 8 MB cost it 18–26% more CPU per call
 * in scavenges at c=64 (16: +7–14 MB under load, no change at 1,000 open streams; 32 cut another ~5% for
 * +26 MB there — an operator's choice). The crypto worker's nursery is 2 MB unless the
 * variable asks for less: its warm path is nil (request workers cache decrypted values), it allocates on
 * cold decrypts and operator commands only, and an 8 MB nursery there was ~5 MB of idle RSS.
 */
import type { ResourceLimits } from 'node:worker_threads';
import { AivaultError } from '../core/errors.js';

export const WORKER_HEAP_ENV = 'AIVAULTD_WORKER_HEAP_MB';
export const DEFAULT_WORKER_HEAP_MB = 96;
/** Below this a worker cannot even load its modules and the pool would restart it forever. */
const MIN_WORKER_HEAP_MB = 32;
export const WORKER_YOUNG_ENV = 'AIVAULTD_WORKER_YOUNG_MB';
export const DEFAULT_WORKER_YOUNG_MB = 16;
const MIN_WORKER_YOUNG_MB = 2;
export const CRYPTO_WORKER_YOUNG_MB = 2;

/** The limits for one worker: old space from $AIVAULTD_WORKER_HEAP_MB (default 96 MB), young space from
 * $AIVAULTD_WORKER_YOUNG_MB (default 16 MB). */
export function workerResourceLimits(env: NodeJS.ProcessEnv = process.env): ResourceLimits {
  return {
    maxOldGenerationSizeMb: megabytes(env, WORKER_HEAP_ENV, DEFAULT_WORKER_HEAP_MB, MIN_WORKER_HEAP_MB),
    maxYoungGenerationSizeMb: megabytes(env, WORKER_YOUNG_ENV, DEFAULT_WORKER_YOUNG_MB, MIN_WORKER_YOUNG_MB),
  };
}

/** The crypto worker's limits: the same old space, a nursery of at most CRYPTO_WORKER_YOUNG_MB. */
export function cryptoWorkerResourceLimits(env: NodeJS.ProcessEnv = process.env): ResourceLimits {
  const limits = workerResourceLimits(env);
  return {
    ...limits,
    maxYoungGenerationSizeMb: Math.min(
      limits.maxYoungGenerationSizeMb ?? CRYPTO_WORKER_YOUNG_MB,
      CRYPTO_WORKER_YOUNG_MB,
    ),
  };
}

function megabytes(env: NodeJS.ProcessEnv, name: string, def: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return def;
  const mb = Number(raw);
  if (!Number.isInteger(mb) || mb < min) {
    throw new AivaultError('usage', `${name}=${raw}: must be a whole number of megabytes, at least ${min}`);
  }
  return mb;
}

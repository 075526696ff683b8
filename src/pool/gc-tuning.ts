/**
 * V8 settings for the whole daemon process (every isolate: the main thread, the crypto worker, the request
 * workers), applied before any worker starts.
 *
 * `--no-allocation-site-pretenuring`: V8 watches how often the objects of each allocation site survive a
 * scavenge and, past a threshold, allocates that site's objects directly in old space. In aivaultd it
 * picks the per-call objects (the deserialized call message, the port sink's closures, the call's async
 * frames), whose owners live ~10 ms: in old space they die at once, cost a full collection to reclaim, and
 * until then keep every young object they point to alive through each scavenge, which promotes those too.
 * Measured in the request worker (bench/PROFILE.md, "Promoted garbage in the request worker"), with its
 * call entries already released (src/request-worker/active-calls.ts): at c=64, promoted 47–50 → 13–15 MB
 * per ~17,000 calls and full collections 7 → 3; V8 takes the decision in some runs and not in others, so
 * without the flag the same load swung between the two.
 *
 * `--expose-gc`: lets each thread run one full collection once it went quiet after a burst
 * (src/core/threads/idle-release.ts), the only way Node offers to ask for one. The release takes the
 * function from a fresh context (the main thread's global, made before the flag, has none; workers made
 * after it have one, and run only the daemon's code).
 */
import { setFlagsFromString } from 'node:v8';

/** Idempotent; workers started afterwards inherit it (V8 flags are per process). */
export function applyDaemonV8Flags(): void {
  setFlagsFromString('--no-allocation-site-pretenuring --expose-gc');
}

/**
 * Daemon intervals and lock staleness that tests shorten (pure; every thread reads it). The ONLY way to set them is
 * `startDaemon(config, { testing })` in-process: no flag, env var or vault file sets them, so a production
 * daemon always runs the defaults. They reach the request workers inside Config (`config.testing`), which
 * loadConfig never fills.
 */
export interface TestIntervals {
  /** OAuth token-endpoint failure backoff per request worker (default 1 s doubling to 30 s). */
  readonly oauthBackoffMs?: { readonly initial: number; readonly max: number };
  /** Token re-check interval of open HTTP relays/streams (default 1 s). */
  readonly tokenRecheckMs?: number;
  /** Silence before uWS pings a /aivault/ws client (default 120 s; uWS accepts 0 or at least 8). */
  readonly wsIdleTimeoutS?: number;
  /** fs.watch the vault directory (default true); off = only generation bumps and the poll notice changes. */
  readonly watchVault?: boolean;
  /** Safety-net poll interval of the vault watcher (default 5 s). */
  readonly vaultPollMs?: number;
  /**
   * When a vault store lock whose holder stopped refreshing it may be taken over: the write lock
   * `.vault.lock` (default 10 s) and the init lock `.init.lock` (default 30 s). proper-lockfile treats
   * anything under 2 s as 2 s. Applied per vault root in the daemon threads that take these locks
   * (src/stores/vault/store.ts useTestLockStaleness); a CLI process of the same test keeps the defaults.
   */
  readonly storeLockStaleMs?: number;
  /**
   * When a rate-limit slot lock held by a worker that died inside the critical section is taken over
   * (default 1 s; src/core/threads/rate-limit.ts).
   */
  readonly rateLimitLockStaleMs?: number;
}

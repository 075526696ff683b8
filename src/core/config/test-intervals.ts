/**
 * Daemon intervals that tests shorten (pure; every thread reads it). The ONLY way to set them is
 * `startDaemon(config, { testing })` in-process: no flag, env var or vault file sets them, so a production
 * daemon always runs the defaults. They reach the request workers inside Config (`config.testing`), which
 * loadConfig never fills.
 */
export interface TestIntervals {
  /** OAuth token-endpoint failure backoff per request worker (default 1 s doubling to 30 s). */
  readonly oauthBackoffMs?: { readonly initial: number; readonly max: number };
  /** Token re-check interval of open HTTP relays/streams (default 1 s). */
  readonly tokenRecheckMs?: number;
  /** fs.watch the vault directory (default true); off = only generation bumps and the poll notice changes. */
  readonly watchVault?: boolean;
  /** Safety-net poll interval of the vault watcher (default 5 s). */
  readonly vaultPollMs?: number;
}

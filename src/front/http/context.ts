/**
 * What the loopback HTTP listener's route modules share (aivaultd main thread): the pool they hand calls
 * to, the token verifier (hashes only), the audit sink, the common start of every request, the metrics
 * sink, and the remote-peer opt-in. Built once by startHttpServer (../http-server.ts).
 */
import type { AuditInput } from '../../stores/audit/audit-log.js';
import type { TokenVerifier } from '../../stores/tokens/tokens.js';
import type { DaemonPool } from '../../pool/daemon-pool.js';
import type { DaemonMetrics } from '../metrics.js';
import type { Begin } from './request-start.js';

export interface ListenerContext {
  readonly pool: DaemonPool;
  readonly verifier: TokenVerifier;
  /** Append to the audit log; a failed append is reported on stderr, never thrown into a route. */
  readonly audit: (event: AuditInput) => void;
  readonly begin: Begin;
  /** Counts the listener's own refusals (and serves /metrics) when the daemon has metrics. */
  readonly metrics: DaemonMetrics | undefined;
  /** Accept non-loopback peers (operator opt-in). */
  readonly allowRemote: boolean;
}

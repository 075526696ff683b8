/**
 * Fleet mode on aivaultd's main thread: checks the settings at start, says loudly what is shared and how
 * failures are handled, and runs the central audit shipper. The Redis admission itself lives in each
 * request worker (redis-admission.ts, wired in src/request-worker/entry.ts). Main thread only.
 */
import type { Config } from '../../core/config/env.js';
import { AivaultError } from '../../core/errors.js';
import { vaultPaths } from '../vault/paths.js';
import type { AuditShipper } from './audit-shipper.js';
import { redactUrl } from './config.js';

export interface FleetRuntime {
  readonly shipper: AuditShipper | undefined;
  stop(): Promise<void>;
}

export async function startFleet(
  config: Config,
  warn: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
): Promise<FleetRuntime> {
  const fleet = config.fleet;
  if (!fleet || (!fleet.redisUrl && !fleet.auditPostgresUrl)) {
    return { shipper: undefined, stop: () => Promise.resolve() };
  }
  if (fleet.failOpen && !fleet.redisUrl) {
    throw new AivaultError('usage', '--fleet-fail-open needs --fleet-redis (or AIVAULT_FLEET_REDIS)');
  }
  if (fleet.auditPostgresUrl && config.disableDiskLogs) {
    // The local day files are the shipper's spool: without them nothing could be sent exactly once.
    throw new AivaultError(
      'usage',
      '--fleet-audit-postgres needs the local audit log (unset AIVAULT_DISABLE_DISK_LOGS)',
    );
  }
  if (fleet.redisUrl) {
    warn(
      `aivaultd: fleet ${fleet.id}: per-capability rate limits are shared through Redis at ${redactUrl(fleet.redisUrl)}`,
    );
    if (fleet.failOpen) {
      warn(
        'aivaultd: WARNING: --fleet-fail-open: while Redis is unreachable, rate-limited capabilities are admitted WITHOUT any limit (each such outage is audited as fleet.fail_open)',
      );
    }
  }
  let shipper: AuditShipper | undefined;
  if (fleet.auditPostgresUrl) {
    // pg (~1.7 MB of heap) is imported only when the central audit table is configured (issue 12, memory).
    const { AuditShipper } = await import('./audit-shipper.js');
    shipper = new AuditShipper({
      auditDir: vaultPaths(config).auditDir,
      url: fleet.auditPostgresUrl,
      fleetId: fleet.id,
      node: fleet.node,
      vaultTag: config.vaultDir,
      warn,
    });
    await shipper.start();
    warn(
      `aivaultd: fleet ${fleet.id}: audit events are copied to PostgreSQL at ${redactUrl(fleet.auditPostgresUrl)} as node ${fleet.node}`,
    );
  }
  return {
    shipper,
    stop: async () => {
      await shipper?.stop();
    },
  };
}

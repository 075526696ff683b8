/**
 * The central audit table on PostgreSQL (node-postgres): schema, idempotent batch insert, and the read
 * behind `aivault audit --fleet`. Runs on aivaultd's main thread (the shipper, audit-shipper.ts) and in
 * the CLI. Rows hold the sanitized audit event (src/stores/audit/audit-log.ts sanitizeEvent: the AuditEvent
 * fields only, none of which can hold a secret value) plus the fleet id and host name.
 *
 * Idempotence: `event_id` is the primary key and inserts are `ON CONFLICT DO NOTHING`, so a batch sent
 * twice (a crash between COMMIT and the cursor write, a timeout whose insert did land) adds nothing.
 */
import pg from 'pg';
import { sanitizeEvent, type AuditEvent, type AuditInput } from '../audit/audit-log.js';

export const AUDIT_TABLE = 'aivault_audit_events';

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS ${AUDIT_TABLE} (
    event_id text PRIMARY KEY,
    fleet_id text NOT NULL,
    node text NOT NULL,
    ts_ms bigint NOT NULL,
    kind text NOT NULL,
    capability text,
    event jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
  )`,
  `CREATE INDEX IF NOT EXISTS ${AUDIT_TABLE}_fleet_ts ON ${AUDIT_TABLE} (fleet_id, ts_ms DESC)`,
];

/** One event as shipped: its stable id, and where it came from. */
export interface FleetAuditRow {
  readonly eventId: string;
  readonly event: AuditEvent;
}

/** An event read back from the central table. */
export type FleetAuditEvent = AuditEvent & { readonly node: string; readonly eventId: string };

export interface AuditStoreOptions {
  readonly url: string;
  /** Per-query timeout (ms). */
  readonly queryTimeoutMs?: number;
}

/** A small pool (one connection) to the audit database; reconnects by itself on the next query. */
export class AuditStore {
  private readonly pool: pg.Pool;
  private schemaReady = false;

  constructor(opts: AuditStoreOptions) {
    this.pool = new pg.Pool({
      connectionString: opts.url,
      max: 1,
      connectionTimeoutMillis: 3000,
      idleTimeoutMillis: 10_000,
      query_timeout: opts.queryTimeoutMs ?? 10_000,
      application_name: 'aivault',
    });
    // An idle connection dropped by the server is reported here; the next query opens a new one.
    this.pool.on('error', () => undefined);
  }

  /** Create the table once per store (two hosts racing to create it: the loser's error is benign). */
  async ensureSchema(): Promise<void> {
    if (this.schemaReady) return;
    for (const sql of SCHEMA) {
      try {
        await this.pool.query(sql);
      } catch (err) {
        // 23505 unique_violation / 42P07 duplicate_table: a concurrent CREATE ... IF NOT EXISTS won.
        const code = (err as { code?: string }).code;
        if (code !== '23505' && code !== '42P07') throw err;
      }
    }
    this.schemaReady = true;
  }

  /** Insert rows in one statement; rows already present are skipped. Returns how many were new. */
  async insert(fleetId: string, node: string, rows: readonly FleetAuditRow[]): Promise<number> {
    if (rows.length === 0) return 0;
    await this.ensureSchema();
    const res = await this.pool.query(
      `INSERT INTO ${AUDIT_TABLE} (event_id, fleet_id, node, ts_ms, kind, capability, event)
       SELECT e.id, $1, $2, e.ts, e.kind, e.cap, e.ev
       FROM unnest($3::text[], $4::bigint[], $5::text[], $6::text[], $7::jsonb[]) AS e(id, ts, kind, cap, ev)
       ON CONFLICT (event_id) DO NOTHING`,
      [
        fleetId,
        node,
        rows.map((r) => r.eventId),
        rows.map((r) => r.event.tsMs),
        rows.map((r) => r.event.kind),
        rows.map((r) => r.event.capability ?? null),
        rows.map((r) => JSON.stringify(r.event)),
      ],
    );
    return res.rowCount ?? 0;
  }

  /** Newest first, for one fleet (optionally one host). */
  async list(opts: {
    readonly fleetId: string;
    readonly limit: number;
    readonly beforeTsMs?: number;
    readonly node?: string;
  }): Promise<FleetAuditEvent[]> {
    await this.ensureSchema();
    const res = await this.pool.query<{ event_id: string; node: string; event: AuditInput }>(
      `SELECT event_id, node, event FROM ${AUDIT_TABLE}
       WHERE fleet_id = $1 AND ($2::bigint IS NULL OR ts_ms < $2) AND ($3::text IS NULL OR node = $3)
       ORDER BY ts_ms DESC, event_id LIMIT $4`,
      [opts.fleetId, opts.beforeTsMs ?? null, opts.node ?? null, opts.limit],
    );
    // Re-sanitized on the way out: the table is shared, so a row is treated like any other input.
    return res.rows.map((r) => ({ ...sanitizeEvent(r.event, 0), node: r.node, eventId: r.event_id }));
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}

/**
 * Issue 18, "Must show" for the central audit sink: a real aivaultd (in-process: uWS, request workers,
 * crypto worker) with --fleet-audit-postgres against a real PostgreSQL on loopback. The database is
 * stopped for 10 s while 1,000 calls run: calls never wait for it, and once it is back every event of the
 * local log is in the table exactly once (same count, distinct ids, 1,000 invoke events). A shipper that
 * lost its cursor (a crash after COMMIT) re-sends everything and the table adds nothing. `aivault audit
 * --fleet` reads the table.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { AUDIT_TABLE } from '../../src/stores/fleet/audit-store.js';
import { AuditShipper, CURSOR_FILE } from '../../src/stores/fleet/audit-shipper.js';
import { vaultPaths } from '../../src/stores/vault/paths.js';
import { SECRET, envelope, startFixture, type DaemonFixture } from './daemon-fixture.js';
import { havePostgres, startPostgres, type PostgresServer } from '../support/fleet-servers.js';
import { isolatedEnv, parseJson, runCli } from '../support/run-cli.js';
import { skipOutsideCi } from '../support/ci.js';

const CALLS = 1000;
const OUTAGE_MS = 10_000;

/** Every event line in the vault's local day files. */
function localLines(auditDir: string): string[] {
  return readdirSync(auditDir)
    .filter((n) => /^events-.*\.jsonl$/.test(n))
    .flatMap((n) => readFileSync(join(auditDir, n), 'utf8').split('\n').filter(Boolean));
}

const skip = skipOutsideCi(havePostgres(), 'PostgreSQL 15 (Debian package postgresql)');

describe.skipIf(skip)('central audit sink on PostgreSQL', () => {
  let db: PostgresServer;
  let fx: DaemonFixture;
  let sql: pg.Pool;
  const fleetId = `t${randomBytes(4).toString('hex')}`;
  beforeAll(async () => {
    db = await startPostgres();
    fx = await startFixture({ workers: 2, fleet: { auditPostgresUrl: db.url, id: fleetId, node: 'host-a' } });
    // A pool: the test's own connection dies with the server during the outage (reported, not thrown).
    sql = new pg.Pool({ connectionString: db.url, max: 2 });
    sql.on('error', () => undefined);
  }, 90_000);
  afterAll(async () => {
    await sql?.end().catch(() => undefined);
    await fx?.close();
    db?.stop();
  });

  const rows = async (): Promise<{ total: number; ids: number; invokes: number }> => {
    const r = await sql.query<{ total: string; ids: string; invokes: string }>(
      `SELECT count(*) AS total, count(DISTINCT event_id) AS ids,
              count(*) FILTER (WHERE kind = 'invoke') AS invokes
       FROM ${AUDIT_TABLE} WHERE fleet_id = $1`,
      [fleetId],
    );
    const row = r.rows[0] as { total: string; ids: string; invokes: string };
    return { total: Number(row.total), ids: Number(row.ids), invokes: Number(row.invokes) };
  };

  /** Poll (bounded) until the table holds `want` events of this fleet. */
  const waitForRows = async (want: number, timeoutMs = 60_000): Promise<void> => {
    const until = Date.now() + timeoutMs;
    while ((await rows()).total < want) {
      if (Date.now() > until) throw new Error(`only ${(await rows()).total} of ${want} events arrived`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  it(`PostgreSQL stopped for 10 s during ${CALLS} calls: every event arrives exactly once`, async () => {
    let issued = 0;
    const call = async (): Promise<void> => {
      const i = issued++;
      expect((await fx.client.invoke(envelope(`/a/${i}`))).status).toBe(200);
    };
    const batch = async (n: number, paceMs = 0): Promise<void> => {
      for (let k = 0; k < n; k += 10) {
        await Promise.all(Array.from({ length: Math.min(10, n - k) }, call));
        if (paceMs) await new Promise((r) => setTimeout(r, paceMs));
      }
    };
    await batch(300);
    db.pause();
    const downAt = Date.now();
    // Calls keep running (and succeed) while the database is down, spread over the outage.
    await batch(400, OUTAGE_MS / 40);
    const rest = OUTAGE_MS - (Date.now() - downAt);
    if (rest > 0) await new Promise((r) => setTimeout(r, rest)); // the outage lasts at least 10 s
    await db.resume();
    await batch(CALLS - 700);
    expect(issued).toBe(CALLS);

    const local = localLines(vaultPaths(fx.config).auditDir);
    await waitForRows(local.length);
    const got = await rows();
    expect(got.invokes).toBe(CALLS);
    expect(got.total).toBe(local.length); // nothing lost, nothing duplicated
    expect(got.ids).toBe(got.total);
    // The same fields as the local log, never more; the call paths all arrived.
    const paths = await sql.query<{ p: string }>(
      `SELECT event->>'path' AS p FROM ${AUDIT_TABLE} WHERE fleet_id = $1 AND kind = 'invoke'`,
      [fleetId],
    );
    expect(new Set(paths.rows.map((r) => r.p)).size).toBe(CALLS);
    const leaked = await sql.query(`SELECT 1 FROM ${AUDIT_TABLE} WHERE event::text LIKE $1`, [`%${SECRET}%`]);
    expect(leaked.rowCount).toBe(0);
  }, 180_000);

  it('a shipper that lost its cursor re-sends everything and the table adds nothing', async () => {
    const auditDir = vaultPaths(fx.config).auditDir;
    const before = await rows();
    const cursorDir = mkdtempSync(join(tmpdir(), 'aivault-cursor-'));
    onTestFinished(() => rmSync(cursorDir, { recursive: true, force: true }));
    const shipper = new AuditShipper({
      auditDir,
      url: db.url,
      fleetId,
      node: 'host-a',
      vaultTag: fx.config.vaultDir,
      cursorFile: join(cursorDir, CURSOR_FILE), // none yet: starts from the beginning
      warn: () => undefined,
    });
    await shipper.start();
    onTestFinished(() => shipper.stop(0));
    expect(await shipper.drain()).toBe(true);
    expect(shipper.stats.shipped).toBe(0);
    expect(shipper.stats.duplicates).toBeGreaterThanOrEqual(before.total);
    expect((await rows()).total).toBe(before.total);
  }, 60_000);

  it('ships only complete lines, in order, and reports a day file deleted before it was shipped', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aivault-ship-'));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'events-2026-01-01.jsonl');
    const line = (i: number): string =>
      `${JSON.stringify({ tsMs: 1_000 + i, kind: 'invoke', path: `/p/${i}` })}\n`;
    writeFileSync(file, line(1) + line(2) + line(3).slice(0, 10)); // the third is still being written
    const id = `u${randomBytes(4).toString('hex')}`;
    const warnings: string[] = [];
    const shipper = new AuditShipper({
      auditDir: dir,
      url: db.url,
      fleetId: id,
      node: 'host-b',
      pollMs: 3_600_000, // only drain() ships after the first pass
      warn: (l) => warnings.push(l),
    });
    await shipper.start();
    onTestFinished(() => shipper.stop(0));
    const paths = async (): Promise<string[]> =>
      (
        await sql.query<{ p: string }>(
          `SELECT event->>'path' AS p FROM ${AUDIT_TABLE} WHERE fleet_id = $1 ORDER BY ts_ms`,
          [id],
        )
      ).rows.map((r) => r.p);
    expect(await shipper.drain()).toBe(true);
    expect(await paths()).toEqual(['/p/1', '/p/2']);
    appendFileSync(file, line(3).slice(10));
    expect(await shipper.drain()).toBe(true);
    expect(await paths()).toEqual(['/p/1', '/p/2', '/p/3']);
    appendFileSync(file, line(4));
    await shipper.drain();
    expect(await paths()).toHaveLength(4);
    appendFileSync(file, line(5).slice(0, 10));
    await shipper.drain(); // seen, but not a whole line yet
    rmSync(file);
    await shipper.drain();
    expect(await paths()).toHaveLength(4);
    expect(warnings.join('\n')).toMatch(
      /events-2026-01-01\.jsonl was deleted before 10 bytes of it reached PostgreSQL/,
    );
  }, 60_000);

  it('aivault audit --fleet reads the central table', async () => {
    const env = isolatedEnv(fx.config.vaultDir, {
      HOME: fx.config.homeDir,
      AIVAULT_FLEET_AUDIT_POSTGRES: db.url,
      AIVAULT_FLEET_ID: fleetId,
    });
    const r = await runCli(['audit', '--fleet', '--limit', '5', '-v'], { env });
    expect(r.code).toBe(0);
    const events = parseJson<{ kind: string; node: string; eventId: string }[]>(r);
    expect(events).toHaveLength(5);
    for (const e of events) expect(e.node).toBe('host-a');
    expect(events.some((e) => e.kind === 'invoke')).toBe(true);
    expect(r.stdout).not.toContain(SECRET);
    const other = await runCli(['audit', '--fleet', '--fleet-id', 'nobody', '-v'], { env });
    expect(parseJson<unknown[]>(other)).toEqual([]);
  }, 60_000);
});

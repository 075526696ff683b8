/**
 * Fleet rate limits with Redis unreachable, through a real in-process aivaultd (request workers call
 * Redis themselves): fail closed by default (rate_limited naming Redis, nothing reaches the upstream);
 * with --fleet-fail-open the calls are admitted, and the local audit log records a `fleet.fail_open`
 * event and marks each uncounted call.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/stores/audit/audit-log.js';
import { FAIL_OPEN_NOTE } from '../../src/request-worker/pipeline/authorize.js';
import { invokeInProcess } from '../../src/request-worker/pipeline/in-process.js';
import { parseFleetSettings } from '../../src/stores/fleet/config.js';
import { vaultPaths } from '../../src/stores/vault/paths.js';
import { freePort } from '../support/fleet-servers.js';
import { envelope, startFixture, type DaemonFixture } from './daemon-fixture.js';

let fx: DaemonFixture | undefined;
afterEach(async () => {
  await fx?.close();
  fx = undefined;
});

/** A Redis URL on a loopback port nothing listens on. */
async function deadRedis(): Promise<string> {
  return `redis://127.0.0.1:${await freePort()}/0`;
}

describe('fleet rate limits with Redis unreachable', () => {
  it('fail closed by default: rate_limited naming Redis, the upstream sees nothing', async () => {
    fx = await startFixture({
      workers: 1,
      limited: { 'echo/limited': 100 },
      fleet: { redisUrl: await deadRedis() },
    });
    const before = fx.upstream.requests.length;
    await expect(fx.client.invoke(envelope('/x', 'GET', 'echo/limited'))).rejects.toMatchObject({
      code: 'rate_limited',
      message: expect.stringMatching(/Redis at redis:\/\/127\.0\.0\.1:\d+\/0 is unreachable/),
    });
    expect(fx.upstream.requests.length).toBe(before);
    expect((await fx.client.invoke(envelope('/free'))).status).toBe(200); // no limit: no Redis needed
  }, 60_000);

  it('in-process mode (AIVAULTD_DISABLE=1) uses the fleet window too, never a private local count', async () => {
    fx = await startFixture({ workers: 1, limited: { 'echo/limited': 100 } });
    const config = Object.freeze({
      ...fx.config,
      fleet: parseFleetSettings({}, { redisUrl: await deadRedis() }),
    });
    const before = fx.upstream.requests.length;
    await expect(
      invokeInProcess(config, fx.vault, envelope('/ip', 'GET', 'echo/limited')),
    ).rejects.toMatchObject({
      code: 'rate_limited',
      message: expect.stringMatching(/Redis at .* is unreachable/),
    });
    expect(fx.upstream.requests.length).toBe(before);
  }, 60_000);

  it('--fleet-fail-open: admitted uncounted, audited as fleet.fail_open and marked on each call', async () => {
    fx = await startFixture({
      workers: 1,
      limited: { 'echo/limited': 1 },
      fleet: { redisUrl: await deadRedis(), failOpen: true },
    });
    for (let i = 0; i < 3; i++) {
      expect((await fx.client.invoke(envelope(`/o/${i}`, 'GET', 'echo/limited'))).status).toBe(200);
    }
    const events = await new AuditLog(fx.config, vaultPaths(fx.config)).list({ limit: 100 });
    expect(events.filter((e) => e.kind === 'fleet.fail_open').length).toBeGreaterThanOrEqual(1);
    const calls = events.filter((e) => e.kind === 'invoke' && e.capability === 'echo/limited');
    expect(calls).toHaveLength(3);
    for (const e of calls) expect(e.note).toBe(FAIL_OPEN_NOTE);
  }, 60_000);
});

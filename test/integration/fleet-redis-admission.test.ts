/**
 * RedisAdmission (src/stores/fleet/redis-admission.ts) against a real redis-server on loopback: the shared
 * sliding window is exact under races between independent clients (as separate hosts would be), fleets
 * are namespaced, nothing but names and counters goes to Redis, and an outage fails closed (or open, when
 * configured, with an audit event) and recovers without a new client.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { Redis } from 'ioredis';
import { RedisAdmission } from '../../src/stores/fleet/redis-admission.js';
import { haveRedis, startRedis, type RedisServer } from '../support/fleet-servers.js';
import { skipOutsideCi } from '../support/ci.js';

const skip = skipOutsideCi(haveRedis(), 'redis-server (Debian package redis-server)');

describe.skipIf(skip)('fleet rate limits on Redis', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis?.stop());

  const admission = (
    fleetId: string,
    extra: Partial<ConstructorParameters<typeof RedisAdmission>[0]> = {},
  ) => {
    const warnings: string[] = [];
    const a = new RedisAdmission({
      url: redis.url,
      fleetId,
      failOpen: false,
      warn: (l) => warnings.push(l),
      ...extra,
    });
    onTestFinished(() => a.close());
    return { a, warnings };
  };

  it('admits exactly L of many concurrent calls from three independent clients', async () => {
    const clients = [admission('race').a, admission('race').a, admission('race').a];
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        (clients[i % 3] as RedisAdmission).tryAcquire('openai/chat', 100),
      ),
    );
    expect(results.filter((r) => r.admitted)).toHaveLength(100);
    const refused = results.filter((r) => !r.admitted);
    expect(refused).toHaveLength(200);
    for (const r of refused) {
      expect(r.unavailable).toBeUndefined();
      expect(r.retryAfterMs).toBeGreaterThan(0);
      expect(r.retryAfterMs).toBeLessThanOrEqual(60_000);
    }
  });

  it('keeps fleets and capabilities apart, and stores names and counters only', async () => {
    const { a } = admission('fleet-a');
    const { a: b } = admission('fleet-b');
    for (let i = 0; i < 3; i++) expect((await a.tryAcquire('cap/x', 3)).admitted).toBe(true);
    expect((await a.tryAcquire('cap/x', 3)).admitted).toBe(false);
    expect((await a.tryAcquire('cap/y', 3)).admitted).toBe(true);
    expect((await b.tryAcquire('cap/x', 3)).admitted).toBe(true);
    const r = new Redis(redis.url);
    onTestFinished(() => void r.quit());
    const keys = (await r.keys('*')).filter((k) => !k.includes(':race:')).sort();
    expect(keys).toEqual([
      'aivault:fleet-a:rl:cap/x',
      'aivault:fleet-a:rl:cap/y',
      'aivault:fleet-b:rl:cap/x',
    ]);
    const members = await r.zrange('aivault:fleet-a:rl:cap/x', 0, -1);
    expect(members).toHaveLength(3);
    for (const m of members) expect(m).toMatch(/^[0-9a-f]{12}:\d+:\d+$/);
    expect(await r.pttl('aivault:fleet-a:rl:cap/x')).toBeGreaterThan(0);
  });

  it('fails closed while Redis is down (naming Redis) and counts again once it is back', async () => {
    const { a, warnings } = admission('outage');
    expect((await a.tryAcquire('cap/o', 2)).admitted).toBe(true);
    await redis.kill();
    const down = await a.tryAcquire('cap/o', 2);
    expect(down.admitted).toBe(false);
    expect(down.unavailable).toMatch(/Redis at redis:\/\/127\.0\.0\.1:\d+\/0 is unreachable/);
    expect(warnings.join('\n')).toMatch(/unreachable/);
    await redis.restart();
    // Recovery without a new client: wait (bounded) until the reconnect lands.
    const until = Date.now() + 15_000;
    let d = await a.tryAcquire('cap/o', 2);
    while (d.unavailable && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      d = await a.tryAcquire('cap/o', 2);
    }
    expect(d.admitted).toBe(true); // the restarted Redis is empty: 1 of 2
    expect((await a.tryAcquire('cap/o', 2)).admitted).toBe(true);
    expect((await a.tryAcquire('cap/o', 2)).admitted).toBe(false);
    expect(warnings.join('\n')).toMatch(/reachable again/);
  }, 30_000);

  it('fails closed while Redis answers with an error and recovers on the next good answer', async () => {
    const { a, warnings } = admission('err');
    const r = new Redis(redis.url);
    onTestFinished(() => void r.quit());
    // The window key holds the wrong type: the script fails inside Redis (connection fine).
    await r.set('aivault:err:rl:cap/m', 'not a sorted set');
    const refused = await a.tryAcquire('cap/m', 5);
    expect(refused.admitted).toBe(false);
    expect(refused.unavailable).toMatch(/Redis at/);
    await r.del('aivault:err:rl:cap/m');
    expect((await a.tryAcquire('cap/m', 5)).admitted).toBe(true);
    expect(warnings.join('\n')).toMatch(/reachable again/);
  });

  it('--fleet-fail-open admits uncounted while Redis is down, warns, and audits it once', async () => {
    const events: { kind: string; note?: string }[] = [];
    const { a, warnings } = admission('open', {
      url: 'redis://127.0.0.1:1/0',
      failOpen: true,
      audit: async (e) => {
        events.push(e);
      },
    });
    const d1 = await a.tryAcquire('cap/f', 1);
    const d2 = await a.tryAcquire('cap/f', 1);
    expect(d1).toMatchObject({ admitted: true, bypassed: true });
    expect(d2).toMatchObject({ admitted: true, bypassed: true });
    expect(warnings.filter((w) => w.includes('WARNING'))).toHaveLength(1);
    expect(events.filter((e) => e.kind === 'fleet.fail_open')).toHaveLength(1);
  });
});

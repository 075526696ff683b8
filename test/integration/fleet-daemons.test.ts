/**
 * Issue 18, "Must show" for shared rate limits: two aivaultd PROCESSES (the built daemon), each with its
 * own vault, against one real redis-server on loopback. N calls from each to a capability limited to L
 * per minute: exactly L are admitted across both (and exactly L reach the upstream). Then Redis is killed
 * mid-run: limited calls are refused `rate_limited` naming Redis (fail closed; unlimited capabilities are
 * unaffected), and after Redis is restarted both daemons count again, without a restart of their own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type DaemonClient } from '../../src/core/protocol/client.js';
import { startHttpsUpstream, type HttpsUpstream } from '../support/https-upstream.js';
import { addCustomCredential, createDevVault, type DevVault } from '../support/dev-vault.js';
import { DAEMON } from '../support/run-cli.js';
import { haveRedis, startRedis, type RedisServer } from '../support/fleet-servers.js';
import { skipOutsideCi } from '../support/ci.js';
import { envelope } from './daemon-fixture.js';

const L = 45;
const N = 60;
const L2 = 10;

interface Host {
  readonly dv: DevVault;
  readonly child: ChildProcess;
  readonly client: DaemonClient;
  stderr: string;
}

async function connectWhenUp(socketPath: string, child: ChildProcess, log: () => string) {
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      return await connect({ socketPath });
    } catch (err) {
      if (child.exitCode !== null) throw new Error(`aivaultd exited ${child.exitCode}: ${log()}`);
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function startHost(upstream: HttpsUpstream, redisUrl: string, fleetId: string): Promise<Host> {
  const dv = await createDevVault({ prefix: 'aivault-fleet-', upstream: upstream.port, inherit: true });
  await addCustomCredential(dv, {
    id: 'echo',
    secretName: 'ECHO_TOKEN',
    secretValue: `sk-fleet-${randomBytes(8).toString('hex')}`,
    capabilities: {
      'echo/api': { methods: ['GET'] },
      'echo/limited': { methods: ['GET'], policy: { rateLimitPerMinute: L } },
      'echo/after': { methods: ['GET'], policy: { rateLimitPerMinute: L2 } },
    },
  });
  const child = spawn(
    process.execPath,
    [DAEMON, '--workers', '2', '--fleet-redis', redisUrl, '--fleet-id', fleetId],
    { env: dv.env, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const host = { dv, child, stderr: '' } as Host;
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (host.stderr += d));
  (host as { client: DaemonClient }).client = await connectWhenUp(dv.socketPath, child, () => host.stderr);
  return host;
}

async function stopHost(h: Host | undefined): Promise<void> {
  if (!h) return;
  h.client?.close();
  if (h.child.exitCode === null) {
    const exited = new Promise((r) => h.child.once('exit', r));
    h.child.kill('SIGTERM');
    await exited;
  }
  h.dv.close();
}

const codeOf = (r: PromiseSettledResult<unknown>): string =>
  r.status === 'fulfilled' ? 'ok' : String((r.reason as { code?: string }).code);

const skip = skipOutsideCi(haveRedis(), 'redis-server (Debian package redis-server)');

describe.skipIf(skip)('two aivaultd processes share one Redis rate limit', () => {
  let redis: RedisServer;
  let upstream: HttpsUpstream;
  let a: Host;
  let b: Host;
  beforeAll(async () => {
    redis = await startRedis();
    upstream = await startHttpsUpstream();
    const fleetId = `t${randomBytes(4).toString('hex')}`;
    [a, b] = await Promise.all([
      startHost(upstream, redis.url, fleetId),
      startHost(upstream, redis.url, fleetId),
    ]);
  }, 90_000);
  afterAll(async () => {
    await Promise.all([stopHost(a), stopHost(b)]);
    await upstream?.close();
    await redis?.stop();
  });

  it(`${N} calls from each host, limit ${L}: exactly ${L} admitted fleet-wide`, async () => {
    const before = upstream.requests.length;
    const results = await Promise.allSettled(
      Array.from({ length: 2 * N }, (_, i) =>
        (i % 2 ? b : a).client.invoke(envelope(`/limited/${i}`, 'GET', 'echo/limited')),
      ),
    );
    const codes = results.map(codeOf);
    expect(codes.filter((c) => c === 'ok')).toHaveLength(L);
    expect(codes.filter((c) => c === 'rate_limited')).toHaveLength(2 * N - L);
    expect(upstream.requests.length - before).toBe(L);
  }, 60_000);

  it('Redis killed mid-run: fail closed naming Redis; restarted: counted again without a daemon restart', async () => {
    // Mid-run: a stream of limited calls is going on when Redis dies.
    const running = Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        (i % 2 ? b : a).client.invoke(envelope(`/mid/${i}`, 'GET', 'echo/limited')),
      ),
    );
    await redis.kill();
    await running;
    const before = upstream.requests.length;
    const down = await Promise.allSettled(
      Array.from({ length: 10 }, (_, i) =>
        (i % 2 ? b : a).client.invoke(envelope(`/down/${i}`, 'GET', 'echo/after')),
      ),
    );
    for (const r of down) {
      expect(r.status).toBe('rejected');
      const err = (r as PromiseRejectedResult).reason as { code?: string; message?: string };
      expect(err.code).toBe('rate_limited');
      expect(err.message).toMatch(/Redis at redis:\/\/127\.0\.0\.1:\d+\/0 is unreachable/);
    }
    expect(upstream.requests.length).toBe(before); // nothing slipped through uncounted
    // A capability without a rate limit does not need Redis.
    expect((await a.client.invoke(envelope('/free'))).status).toBe(200);

    await redis.restart();
    // Wait (bounded) until each host's workers have reconnected: a limited call is admitted again.
    for (const h of [a, b]) {
      const until = Date.now() + 20_000;
      for (;;) {
        const r = await h.client.invoke(envelope('/probe', 'GET', 'echo/limited')).then(
          () => 'ok',
          (e: { message?: string }) => e.message ?? '',
        );
        if (r === 'ok') break;
        if (!/Redis/.test(r) || Date.now() > until) throw new Error(`no recovery: ${r}`);
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    // Counting again, shared: the restarted Redis is empty, so exactly L2 of 30 calls are admitted.
    const after = await Promise.allSettled(
      Array.from({ length: 30 }, (_, i) =>
        (i % 2 ? b : a).client.invoke(envelope(`/after/${i}`, 'GET', 'echo/after')),
      ),
    );
    const codes = after.map(codeOf);
    expect(codes.filter((c) => c === 'ok')).toHaveLength(L2);
    expect(codes.filter((c) => c === 'rate_limited')).toHaveLength(30 - L2);
    expect(a.stderr + b.stderr).toMatch(/Redis at .* unreachable/);
    expect(a.stderr + b.stderr).toMatch(/reachable again/);
  }, 90_000);
});

/**
 * Issue 19 finding 5 (memory bound per connection): a same-user process opens the daemon socket, starts
 * 40 non-stream calls whose answers are 4 MiB each and never reads a byte, so that aivaultd holds every
 * answer for it (before: RSS 261 → 699 MB). Stopped by: a connection may hold at most
 * MAX_UNSENT_BYTES_PER_CONNECTION unsent bytes and run MAX_NONSTREAM_CALLS_PER_CONNECTION non-stream
 * calls at once (src/front/socket-server.ts); answers and queued calls past the bound fail with
 * daemon_busy (capacity, not a rate limit), and other clients are still served.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeFrame } from '../../src/core/protocol/frames.js';
import { startAttackEnv, type AttackEnv } from './support/attack-env.js';

const CALLS = 40;
const BYTES = 4 * 1024 * 1024;
/** What 40 × 4 MiB held in full costs (≥ 160 MiB); the bound must keep growth well below it. */
const MAX_GROWTH_MB = 120;

let a: AttackEnv;
beforeAll(async () => {
  a = await startAttackEnv();
}, 120_000);
afterAll(() => a?.close());

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? 0) / 1024;
}

describe('attack: a client that never reads makes the daemon buffer its answers', () => {
  it('40 × 4 MiB answers to a non-reading client: RSS growth stays bounded, others still served', async () => {
    const warm = await a.cli(['invoke', 'openai/models', '--path', '/v1/models/warm-up']);
    expect(warm.code, warm.stderr).toBe(0);
    const pid = Number(readFileSync(join(a.vaultDir, 'run', 'aivaultd.pid'), 'utf8').trim());
    const before = rssMb(pid);
    const served = a.upstream.largeBytesWritten.count;

    const ws = new WebSocket(`ws+unix:${join(a.vaultDir, 'run', 'aivaultd.sock')}:/`);
    await new Promise((r, j) => ws.once('open', r).once('error', j));
    // Never read: the kernel buffers fill and the daemon sees a client that does not drain.
    (ws as unknown as { _socket: { pause(): void } })._socket.pause();
    for (let id = 1; id <= CALLS; id++) {
      ws.send(
        encodeFrame({
          type: 'invoke',
          id,
          stream: false,
          envelope: {
            capability: 'openai/models',
            request: { method: 'GET', path: `/v1/models/large?bytes=${BYTES}` },
          },
          context: {},
        }),
      );
    }
    // Watch until the upstream has been quiet for 2 s: every call the daemon took is answered or refused.
    let peak = before;
    let last = -1;
    for (let quiet = 0, i = 0; quiet < 20 && i < 600; i++) {
      await new Promise((r) => setTimeout(r, 100));
      peak = Math.max(peak, rssMb(pid));
      const now = a.upstream.largeBytesWritten.count;
      quiet = now === last && now > served ? quiet + 1 : 0;
      last = now;
    }
    expect(a.upstream.largeBytesWritten.count).toBeGreaterThan(served);
    // Backpressure reached the upstream: the calls queued behind the unread answers were never sent.
    const upstreamCalls = a.raw.filter((r) => r.url.includes('/large')).length;
    expect(upstreamCalls).toBeLessThan(CALLS);
    const other = await a.cli(['invoke', 'openai/models', '--path', '/v1/models/still-served']);
    expect(other.code, other.stderr).toBe(0);
    ws.terminate();
    expect(
      peak - before,
      `RSS ${before.toFixed(0)} → peak ${peak.toFixed(0)} MB; upstream got ${upstreamCalls} calls`,
    ).toBeLessThan(MAX_GROWTH_MB);
  }, 120_000);
});

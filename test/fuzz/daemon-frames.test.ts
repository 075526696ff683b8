/**
 * Malformed frames never crash aivaultd: thousands of random frames (raw bytes, random msgpack values,
 * near-valid frames with random fields) on one live connection — every one is answered or ignored without
 * closing the connection, and afterwards the SAME connection does a valid invoke. FUZZ_FRAMES sets the
 * count (default 3000; `npm run fuzz` uses 50000).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import WebSocket from 'ws';
import { encode } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import {
  decodeClientFrame,
  decodeDaemonFrame,
  encodeFrame,
  type DaemonFrame,
} from '../../src/core/protocol/frames.js';
import { envelope, startFixture, type DaemonFixture } from '../integration/daemon-fixture.js';

const FRAMES = Number(process.env.FUZZ_FRAMES ?? '3000');
const BOMBS = join(import.meta.dirname, 'jazzer/regressions/frame');

let fx: DaemonFixture;
beforeAll(async () => {
  fx = await startFixture({ workers: 1 });
}, 60_000);
afterAll(() => fx?.close());

function randomFrames(n: number, seed: number): Uint8Array[] {
  const arb = fc.oneof(
    fc.uint8Array({ maxLength: 200 }),
    fc.anything().map((v) => {
      try {
        return encode(v) as Uint8Array;
      } catch {
        return new Uint8Array([0xc1]);
      }
    }),
    fc
      .record(
        {
          v: fc.oneof(fc.constant(1), fc.integer({ min: -3, max: 3 })),
          type: fc.constantFrom('invoke', 'cancel', 'ping', 'status', 'head', 'chunk', 'bogus'),
          id: fc.oneof(fc.integer({ min: -5, max: 2 ** 53 }), fc.string({ maxLength: 4 }), fc.double()),
          envelope: fc.anything(),
          context: fc.anything(),
          stream: fc.anything(),
          timeoutMs: fc.oneof(fc.constant(500), fc.anything()),
        },
        { requiredKeys: ['v', 'type'] },
      )
      .map((r) => encode(r) as Uint8Array),
  );
  return fc.sample(arb, { numRuns: n, seed }).filter((bytes) => {
    // Valid lock/unlock frames would legitimately change vault state; they are not malformed input.
    const d = decodeClientFrame(bytes);
    return !(d.ok && (d.value.type === 'lock' || d.value.type === 'unlock'));
  });
}

describe('aivaultd under a flood of malformed frames', () => {
  it(
    `survives ${FRAMES} random frames on one connection, then serves a valid invoke on it`,
    { timeout: 120_000 },
    async () => {
      const seed = Date.now() % 1_000_000;
      const frames = randomFrames(FRAMES, seed);
      const ws = new WebSocket(`ws+unix:${fx.daemon.socketPath}:/`);
      onTestFinished(() => ws.close());
      ws.binaryType = 'nodebuffer';
      const got: DaemonFrame[] = [];
      let closed = false;
      ws.on('close', () => (closed = true));
      ws.on('message', (d: Buffer) => {
        const r = decodeDaemonFrame(d);
        if (r.ok) got.push(r.value);
      });
      await new Promise((r) => ws.once('open', r));
      for (let i = 0; i < frames.length; i++) {
        ws.send(frames[i]!, { binary: true });
        if (i % 200 === 0) await new Promise((r) => setImmediate(r));
      }
      ws.send('a text frame', { binary: false });
      ws.send(encodeFrame({ type: 'ping', id: 987654321 }));
      const deadline = Date.now() + 60_000;
      while (!got.some((f) => f.type === 'pong' && f.id === 987654321) && Date.now() < deadline && !closed) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(closed, `connection closed (seed ${seed})`).toBe(false);
      expect(
        got.some((f) => f.type === 'pong' && f.id === 987654321),
        `no pong (seed ${seed})`,
      ).toBe(true);
      const errors = got.filter((f) => f.type === 'error');
      expect(errors.length).toBeGreaterThan(frames.length / 2);
      for (const e of errors) expect(typeof (e as { error: string }).error).toBe('string');
      // A valid invoke on the same connection.
      ws.send(
        encodeFrame({
          type: 'invoke',
          id: 424242,
          envelope: envelope('/after-fuzz'),
          context: {},
          stream: false,
        }),
      );
      while (!got.some((f) => f.id === 424242 && f.type !== 'error') && Date.now() < deadline) {
        if (got.some((f) => f.id === 424242 && f.type === 'error')) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const answer = got.find((f) => f.id === 424242);
      expect(answer, `seed ${seed}`).toMatchObject({ type: 'response', status: 200 });
      // And a fresh client too.
      expect((await fx.client.invoke(envelope('/fresh'))).status).toBe(200);
    },
  );

  // Regression for the msgpack allocation bomb the Jazzer.js frame target found: each 11-byte frame once
  // made the decoder allocate ~400 MB and take up to a second, so 300 of them would take minutes. Now each
  // is refused by the bounds pre-scan before msgpackr allocates anything.
  it(
    'answers 300 allocation-bomb frames with error frames and keeps serving',
    { timeout: 60_000 },
    async () => {
      const bombs = readdirSync(BOMBS).map((f) => new Uint8Array(readFileSync(join(BOMBS, f))));
      expect(bombs.length).toBeGreaterThan(0);
      const ws = new WebSocket(`ws+unix:${fx.daemon.socketPath}:/`);
      onTestFinished(() => ws.close());
      ws.binaryType = 'nodebuffer';
      const errors: string[] = [];
      ws.on('message', (d: Buffer) => {
        const r = decodeDaemonFrame(d);
        if (r.ok && r.value.type === 'error') errors.push(r.value.message);
      });
      await new Promise((r) => ws.once('open', r));
      const rssBefore = process.memoryUsage().rss;
      for (let i = 0; i < 300; i++) ws.send(bombs[i % bombs.length]!, { binary: true });
      while (errors.length < 300) await new Promise((r) => setTimeout(r, 20));
      expect(process.memoryUsage().rss - rssBefore).toBeLessThan(200 * 1024 * 1024);
      expect(errors.every((m) => m.includes('not valid msgpack'))).toBe(true);
      expect((await fx.client.invoke(envelope('/after-bombs'))).status).toBe(200);
    },
  );
});

/**
 * Upstream connection admission (src/request-worker/pipeline/handshake-gate.ts): everything starts at
 * once while the thread has spare time; while it is saturated, 16 set-ups per origin run and the rest
 * start in arrival order as earlier ones finish (or fail); origins never wait on each other.
 */
import type { EventLoopUtilization } from 'node:perf_hooks';
import type { buildConnector } from 'undici';
import { describe, expect, it } from 'vitest';
import {
  createSaturation,
  gateHandshakes,
  HANDSHAKES_ALWAYS,
} from '../../../src/request-worker/pipeline/handshake-gate.js';

type Options = buildConnector.Options;
type Done = (err: Error | null, socket: unknown) => void;

/** An inner connector that records each start and lets the test finish it. */
function fakeDial() {
  const started: { host: string; n: number; finish: (err?: Error) => void }[] = [];
  const dial = ((options: Options, callback: Done) => {
    started.push({
      host: options.hostname,
      n: (options as unknown as { id: number }).id,
      finish: (err) => callback(err ?? null, err ? null : { fake: true }),
    });
  }) as unknown as buildConnector.connector;
  return { dial, started };
}

const opts = (hostname: string, n: number): Options =>
  // `id` only tells the test's connections apart; the origin is protocol, host and port.
  ({ protocol: 'https:', hostname, port: '443', servername: hostname, id: n }) as unknown as Options;

function connectMany(gate: buildConnector.connector, host: string, count: number, results: string[]): void {
  for (let i = 0; i < count; i++) {
    gate(opts(host, i), ((err: Error | null) => results.push(`${host}:${i}:${err ? 'err' : 'ok'}`)) as never);
  }
}

describe('gateHandshakes', () => {
  it('starts every set-up at once while the thread has spare time', () => {
    const { dial, started } = fakeDial();
    const gate = gateHandshakes(dial, () => false);
    connectMany(gate, 'a.example', 40, []);
    expect(started).toHaveLength(40);
  });

  it('while saturated: 16 run, the rest start in arrival order as earlier ones finish or fail', () => {
    const { dial, started } = fakeDial();
    const results: string[] = [];
    const gate = gateHandshakes(dial, () => true);
    connectMany(gate, 'a.example', 20, results);
    expect(started.map((s) => s.n)).toEqual([...Array(HANDSHAKES_ALWAYS).keys()]);
    started[3]?.finish();
    expect(started.at(-1)?.n).toBe(16);
    started[0]?.finish(new Error('refused'));
    expect(started.at(-1)?.n).toBe(17);
    expect(results).toEqual(['a.example:3:ok', 'a.example:0:err']);
    expect(started).toHaveLength(18);
  });

  it('an origin never waits on another', () => {
    const { dial, started } = fakeDial();
    const gate = gateHandshakes(dial, () => true);
    connectMany(gate, 'slow.example', 30, []);
    connectMany(gate, 'other.example', 1, []);
    expect(started.filter((s) => s.host === 'other.example')).toHaveLength(1);
  });

  it('once the thread has spare time again, the next finish starts everything queued', () => {
    const { dial, started } = fakeDial();
    let busy = true;
    const gate = gateHandshakes(dial, () => busy);
    connectMany(gate, 'a.example', 30, []);
    expect(started).toHaveLength(16);
    busy = false;
    started[0]?.finish();
    expect(started).toHaveLength(30);
  });

  it('an inner connector that throws still frees its place', () => {
    let calls = 0;
    const throwing = (() => {
      calls++;
      throw new Error('boom');
    }) as unknown as buildConnector.connector;
    const gate = gateHandshakes(throwing, () => true, 1);
    expect(() => gate(opts('a.example', 1), (() => undefined) as never)).toThrow('boom');
    expect(() => gate(opts('a.example', 2), (() => undefined) as never)).toThrow('boom');
    expect(calls).toBe(2);
  });
});

describe('createSaturation', () => {
  it('reads the event loop at most once per 50 ms window and calls >= 0.9 busy saturated', () => {
    let now = 0;
    let busyShare = 0.95;
    let markAt = 0;
    const elu = (prev?: EventLoopUtilization): EventLoopUtilization => {
      if (!prev) {
        markAt = now;
        return { idle: 0, active: 0, utilization: 0 };
      }
      const span = now - markAt;
      return { idle: span * (1 - busyShare), active: span * busyShare, utilization: busyShare };
    };
    const saturated = createSaturation(elu);
    now = 10;
    expect(saturated()).toBe(false); // window not over yet: the initial answer
    now = 60;
    expect(saturated()).toBe(true);
    busyShare = 0.5;
    now = 80;
    expect(saturated()).toBe(true); // same window
    now = 130;
    expect(saturated()).toBe(false);
  });
});

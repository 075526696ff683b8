import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { Packr } from 'msgpackr';
import { decodeDaemonFrame, encodeFrame, type DaemonFrame } from '../../src/core/protocol/frames.js';
import { connect } from '../../src/core/protocol/client.js';
import { envelope, startFixture, type DaemonFixture } from './daemon-fixture.js';

let fx: DaemonFixture;
beforeAll(async () => {
  fx = await startFixture({ workers: 1, maxInflightPerConnection: 3 });
}, 60_000);
afterAll(() => fx?.close());

/** A raw WebSocket client to send arbitrary bytes. */
async function raw(): Promise<{ ws: WebSocket; next(): Promise<DaemonFrame> }> {
  const ws = new WebSocket(`ws+unix:${fx.daemon.socketPath}:/`);
  const queue: DaemonFrame[] = [];
  const waiters: ((f: DaemonFrame) => void)[] = [];
  ws.on('message', (d: Buffer) => {
    const r = decodeDaemonFrame(d);
    if (!r.ok) throw r.error;
    const w = waiters.shift();
    if (w) w(r.value);
    else queue.push(r.value);
  });
  await new Promise((r) => ws.once('open', r));
  return {
    ws,
    next: () => {
      const f = queue.shift();
      return f ? Promise.resolve(f) : new Promise((r) => waiters.push(r));
    },
  };
}

describe('aivaultd protocol handling', () => {
  it('answers a malformed frame with an error frame and keeps the connection usable', async () => {
    const c = await raw();
    onTestFinished(() => c.ws.close());
    c.ws.send(Buffer.from([0x82, 0xa1]));
    expect(await c.next()).toMatchObject({ type: 'error', error: 'invalid_request' });
    c.ws.send(encodeFrame({ type: 'ping', id: 5 }));
    expect(await c.next()).toMatchObject({ type: 'pong', id: 5 });
  });

  it('rejects an unknown protocol version with a clear message (routed to its id)', async () => {
    const c = await raw();
    onTestFinished(() => c.ws.close());
    c.ws.send(new Packr({ useRecords: false }).pack({ v: 2, type: 'invoke', id: 7 }));
    const f = await c.next();
    expect(f).toMatchObject({ type: 'error', id: 7, error: 'invalid_request' });
    expect((f as { message: string }).message).toContain('unsupported protocol version 2');
  });

  it('rejects text messages and client-bound frame types', async () => {
    const c = await raw();
    onTestFinished(() => c.ws.close());
    c.ws.send('hello');
    expect(await c.next()).toMatchObject({ type: 'error', error: 'invalid_request' });
    c.ws.send(encodeFrame({ type: 'end', id: 1 }));
    expect(await c.next()).toMatchObject({ type: 'error', id: 1, error: 'invalid_request' });
  });

  it('rejects a duplicate in-flight id and enforces the per-connection in-flight limit', async () => {
    const c = await raw();
    onTestFinished(() => c.ws.close());
    const inv = (id: number) =>
      encodeFrame({
        type: 'invoke',
        id,
        envelope: envelope('/stall'),
        context: {},
        stream: false,
        timeoutMs: 2000,
      });
    c.ws.send(inv(1));
    c.ws.send(inv(1));
    expect(await c.next()).toMatchObject({ type: 'error', id: 1, error: 'invalid_request' });
    c.ws.send(inv(2));
    c.ws.send(inv(3));
    c.ws.send(inv(4));
    expect(await c.next()).toMatchObject({ type: 'error', id: 4, error: 'daemon_busy' });
  });

  it('reports an unreachable daemon as daemon_unavailable', async () => {
    await expect(connect({ socketPath: `${fx.daemon.socketPath}.missing` })).rejects.toMatchObject({
      code: 'daemon_unavailable',
    });
  });
});

/**
 * /aivault/ws liveness (src/front/http/ws-relay.ts WS_IDLE_TIMEOUT_S, shortened here to uWS's minimum of
 * 8 s): a client that stops answering pings is closed and its relay ends, while a client that answers
 * (every WebSocket library does, on its own) stays open however long it is silent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startHttpFixture, type HttpFixture } from './http-fixture.js';

let fx: HttpFixture;
let operatorToken: string;
beforeAll(async () => {
  fx = await startHttpFixture({ testing: { wsIdleTimeoutS: 8 } });
  operatorToken = await fx.operator();
}, 60_000);
afterAll(() => fx?.close());

/** A relay to the echo upstream, connected (the upstream's hello frame received). */
async function relay(token: string, autoPong: boolean): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${fx.daemon.http?.port}/aivault/ws`, {
    headers: { authorization: `Bearer ${token}` },
    autoPong,
  });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  const hello = new Promise((resolve) => ws.once('message', resolve));
  ws.send(JSON.stringify({ capability: 'echo/api', path: '/ws-echo' }));
  await hello;
  return ws;
}

async function openWsStreams(): Promise<number | undefined> {
  const res = await fetch(`${fx.baseUrl}/metrics`, { headers: { authorization: `Bearer ${operatorToken}` } });
  const line = (await res.text())
    .split('\n')
    .find((l) => l.startsWith('aivault_open_streams{transport="ws"}'));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('/aivault/ws liveness', () => {
  it('closes a client that stops answering pings, and keeps one that answers', async () => {
    const token = await fx.mint({ capabilities: ['echo/api'] });
    const healthy = await relay(token, true);
    const dead = await relay(token, false);
    await expect.poll(openWsStreams, { timeout: 5000 }).toBe(2);
    const t0 = Date.now();
    const deadClosed = new Promise<number>((r) => dead.once('close', (code) => r(code)));
    let healthyClosed = false;
    healthy.once('close', () => (healthyClosed = true));

    // Pinged after 8 − 4 s of silence, closed 4 s later without an answer.
    const code = await deadClosed;
    const after = Date.now() - t0;
    expect(after).toBeGreaterThan(5000);
    expect(after).toBeLessThan(20_000);
    expect(code).not.toBe(1000); // the daemon gave up on it: no clean close from the client's side
    await expect.poll(openWsStreams, { timeout: 5000 }).toBe(1);

    // The silent but answering client lived through the same period and still relays.
    await new Promise((r) => setTimeout(r, Math.max(0, 14_000 - (Date.now() - t0))));
    expect(healthyClosed).toBe(false);
    const echoed = new Promise<string>((r) => healthy.once('message', (d) => r(String(d))));
    healthy.send('still here');
    expect(await echoed).toBe('still here');
    healthy.close(1000);
    await expect.poll(openWsStreams, { timeout: 5000 }).toBe(0);
  }, 60_000);
});

/**
 * The response blocklist on streamed responses (real daemon, real TLS upstream): SSE `data:` events and a
 * streamed JSON body are redacted as they pass, without buffering the body; a body that is not JSON
 * fails closed before any byte of it is sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envelope, startFixture, type DaemonFixture } from './daemon-fixture.js';

let fx: DaemonFixture;
beforeAll(async () => {
  fx = await startFixture({ blocklist: ['t', 'headers'] });
}, 60_000);
afterAll(() => fx?.close());

async function collect(s: { body: AsyncIterable<Uint8Array> }): Promise<{ text: string; chunks: number }> {
  let text = '';
  let chunks = 0;
  for await (const c of s.body) {
    text += Buffer.from(c).toString('utf8');
    chunks++;
  }
  return { text, chunks };
}

describe('streamed response blocklist', () => {
  it('redacts each SSE data: event as it passes (events still arrive one by one)', async () => {
    const s = fx.client.stream(envelope('/sse?n=3&interval=150', 'GET', 'echo/redacted'));
    expect((await s.head).status).toBe(200);
    const { text, chunks } = await collect(s);
    const events = text.split('\n\n').filter(Boolean);
    expect(events).toEqual([0, 1, 2].map((i) => `data: {"event":${i},"t":"[redacted]"}`));
    expect(chunks).toBeGreaterThanOrEqual(2);
  });

  it('redacts a streamed JSON body field by field', async () => {
    const s = fx.client.stream(envelope('/items?x=1', 'GET', 'echo/redacted'));
    const { text } = await collect(s);
    const body = JSON.parse(text) as Record<string, unknown>;
    expect(body.headers).toBe('[redacted]');
    expect(body.path).toBe('/items');
    expect(body.query).toBe('x=1');
  });

  it('a streamed body that is not JSON fails closed (policy_violation, nothing delivered)', async () => {
    const s = fx.client.stream(envelope('/large?bytes=70000', 'GET', 'echo/redacted'));
    await expect(s.head).rejects.toMatchObject({ code: 'policy_violation' });
    await expect(collect(s)).rejects.toMatchObject({ code: 'policy_violation' });
  });
});

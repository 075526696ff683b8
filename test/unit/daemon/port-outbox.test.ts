/**
 * The port outbox (src/core/threads/port-outbox.ts): what is posted in one callback (worker side) or one
 * loop iteration (main side) reaches the other end as one message, in order, with every transferable
 * moved; a lone message travels as itself; nothing waits for a later turn; and the request worker's sinks
 * flush together at the end of the turn (one batch for all of them).
 */
import { MessageChannel } from 'node:worker_threads';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { eachMessage, PortOutbox } from '../../../src/core/threads/port-outbox.js';
import {
  createPortSink,
  type CallMessage,
  type MainToWorkerPort,
} from '../../../src/core/threads/call-port.js';
import { PoolCall } from '../../../src/pool/pool-call.js';
import { failUnsent, type Slot } from '../../../src/pool/request-workers.js';

/** A fake port that records each postMessage (what one cross-thread message would carry). */
function recorder() {
  const posts: { data: unknown; transfer: readonly unknown[] }[] = [];
  return {
    posts,
    port: {
      postMessage: (data: unknown, transfer: readonly unknown[] = []) => posts.push({ data, transfer }),
    },
  };
}

function channel() {
  const { port1, port2 } = new MessageChannel();
  onTestFinished(() => {
    port1.close();
    port2.close();
  });
  const arrivals: unknown[] = [];
  const messages: unknown[] = [];
  let wake: (() => void) | undefined;
  port2.on('message', (data: unknown) => {
    arrivals.push(data);
    eachMessage(data, (m) => messages.push(m));
    wake?.();
  });
  const waitFor = async (n: number): Promise<void> => {
    while (messages.length < n) await new Promise<void>((r) => (wake = r));
  };
  return { port: port1, arrivals, messages, waitFor };
}

describe('port outbox', () => {
  it('microtask: one callback’s messages go as one array, in order, with all transfers', async () => {
    const { posts, port } = recorder();
    const out = new PortOutbox(port, 'microtask');
    const a = new ArrayBuffer(8);
    const b = new ArrayBuffer(8);
    out.postMessage({ t: 'full', id: 1 }, [a]);
    out.postMessage({ t: 'end', id: 2 });
    out.postMessage({ t: 'chunk', id: 3 }, [b]);
    expect(posts).toHaveLength(0); // not yet: the callback is still running
    await Promise.resolve();
    expect(posts).toEqual([
      {
        data: [
          { t: 'full', id: 1 },
          { t: 'end', id: 2 },
          { t: 'chunk', id: 3 },
        ],
        transfer: [a, b],
      },
    ]);
  });

  it('a lone message travels as itself, not in an array', async () => {
    const { posts, port } = recorder();
    const out = new PortOutbox(port, 'microtask');
    out.postMessage({ t: 'error', id: 4 });
    await Promise.resolve();
    expect(posts.map((p) => p.data)).toEqual([{ t: 'error', id: 4 }]);
  });

  it('immediate: a loop iteration’s messages, microtasks included, go together in its check phase', async () => {
    const { posts, port } = recorder();
    const out = new PortOutbox(port, 'immediate');
    out.postMessage({ t: 'call', id: 1 });
    await Promise.resolve();
    out.postMessage({ t: 'credit', id: 1, n: 1 }); // a microtask later: the same batch
    expect(posts).toHaveLength(0);
    await new Promise<void>((r) => setImmediate(r));
    expect(posts.map((p) => p.data)).toEqual([
      [
        { t: 'call', id: 1 },
        { t: 'credit', id: 1, n: 1 },
      ],
    ]);
  });

  it('flush() posts what is queued at once, and the scheduled flush then finds nothing', async () => {
    const { posts, port } = recorder();
    const out = new PortOutbox(port, 'immediate');
    out.postMessage({ t: 'close' });
    out.flush();
    expect(posts).toHaveLength(1);
    await nextTurn();
    expect(posts).toHaveLength(1);
  });

  it('postNow posts at once, behind what was queued, in the same message', () => {
    const { posts, port } = recorder();
    const out = new PortOutbox(port, 'immediate');
    out.postMessage({ t: 'call', id: 1 });
    out.postNow({ t: 'credit', id: 1, n: 1 });
    expect(posts.map((p) => p.data)).toEqual([
      [
        { t: 'call', id: 1 },
        { t: 'credit', id: 1, n: 1 },
      ],
    ]);
  });

  it('batches keep their order across turns, and every transferred buffer is moved, not copied', async () => {
    const ch = channel();
    const out = new PortOutbox(ch.port, 'microtask');
    const bufs = [new ArrayBuffer(16), new ArrayBuffer(16), new ArrayBuffer(16)];
    out.postMessage({ n: 1, data: bufs[0] }, [bufs[0] as ArrayBuffer]);
    out.postMessage({ n: 2, data: bufs[1] }, [bufs[1] as ArrayBuffer]);
    await Promise.resolve();
    expect(bufs[0]?.byteLength).toBe(0);
    expect(bufs[1]?.byteLength).toBe(0);
    out.postMessage({ n: 3, data: bufs[2] }, [bufs[2] as ArrayBuffer]);
    await ch.waitFor(3);
    expect(ch.arrivals).toHaveLength(2); // [1, 2] then 3 on its own
    expect(ch.messages.map((m) => (m as { n: number }).n)).toEqual([1, 2, 3]);
    expect(ch.messages.map((m) => (m as { data: ArrayBuffer }).data.byteLength)).toEqual([16, 16, 16]);
  });

  it('a message the port refuses does not take its batch or the thread down: the rest arrive, in order', async () => {
    const ch = channel();
    const refused: unknown[] = [];
    const out = new PortOutbox(ch.port, 'microtask', (msg) => refused.push(msg));
    const buf = new ArrayBuffer(16);
    out.postMessage({ n: 1, data: buf }, [buf]);
    const bad = { n: 2, notCloneable: () => 1 };
    out.postMessage(bad);
    out.postMessage({ n: 3 });
    expect(() => out.flush()).not.toThrow();
    await ch.waitFor(2);
    expect(ch.messages.map((m) => (m as { n: number }).n)).toEqual([1, 3]);
    expect((ch.messages[0] as { data: ArrayBuffer }).data.byteLength).toBe(16);
    expect(buf.byteLength).toBe(0); // moved with its own message
    expect(refused).toEqual([bad]);
  });

  it('the main thread fails a call whose start its worker port refused, as internal', () => {
    const got: CallMessage[] = [];
    const slot = {
      port: { ref: () => undefined, unref: () => undefined },
      out: { postMessage: () => undefined, postNow: () => undefined },
      calls: new Map(),
      dead: false,
      returning: [],
    } as unknown as Slot;
    const call = new PoolCall(5, slot, { onMessage: (m) => void got.push(m as CallMessage) }, new Set());
    slot.calls.set(5, call);
    failUnsent(slot, { t: 'credit', id: 5, n: 1 } satisfies MainToWorkerPort); // not a start: nothing
    expect(got).toEqual([]);
    failUnsent(slot, { t: 'call', id: 5, context: {}, stream: false } as unknown as MainToWorkerPort);
    expect(got).toMatchObject([{ t: 'error', error: { error: 'internal' } }]);
    expect(slot.calls.size).toBe(0);
  });

  it('the sinks of one worker flush together at the end of the turn: one message for all their answers', async () => {
    const ch = channel();
    const out = new PortOutbox(ch.port, 'microtask');
    const sinks = [1, 2, 3].map((id) => createPortSink(out, new AbortController().signal, id));
    for (const [i, sink] of sinks.entries()) {
      sink.head(200, [['content-type', 'text/event-stream']]);
      await sink.chunk(new TextEncoder().encode(`data: ${i}\n\n`));
    }
    await ch.waitFor(3);
    expect(ch.arrivals).toHaveLength(1);
    expect((ch.messages as CallMessage[]).map((m) => [m.t, m.id])).toEqual([
      ['head', 1],
      ['head', 2],
      ['head', 3],
    ]);
    for (const sink of sinks) sink.end();
    await Promise.all(sinks.map((s) => s.settled()));
    await ch.waitFor(6);
    expect(ch.arrivals).toHaveLength(2);
  });
});

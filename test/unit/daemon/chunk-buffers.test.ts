/**
 * Pooled chunk buffers (src/core/threads/chunk-buffers.ts): the worker's port sink copies a large chunk into
 * a reused buffer, the main thread's relay gives that buffer back once the client's transport no longer
 * reads it (src/front/relay.ts), and the slot's next credit carries it to the worker (src/pool/pool-call.ts).
 * Real MessageChannels; a buffer given back too early would let the worker overwrite bytes a client has
 * not been sent yet, so each test checks when, not just whether, a buffer comes back.
 */
import { MessageChannel } from 'node:worker_threads';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import {
  ChunkBuffers,
  MAX_FREE_BUFFERS,
  MAX_RETURNING_BUFFERS,
  MIN_POOLED_BYTES,
  POOLED_BYTES,
  usesPooledBuffer,
} from '../../../src/core/threads/chunk-buffers.js';
import {
  COALESCE_BYTES,
  createPortSink,
  type CallMessage,
  type MainToWorkerPort,
} from '../../../src/core/threads/call-port.js';
import { CallRelay, type CreditSource, type RelaySink } from '../../../src/front/relay.js';
import { createTurnWriter, type TurnOutbox } from '../../../src/front/turn-writer.js';
import { PoolCall, type CallHandle } from '../../../src/pool/pool-call.js';
import type { Slot } from '../../../src/pool/request-workers.js';
import { eachMessage, PortOutbox } from '../../../src/core/threads/port-outbox.js';

const pattern = (n: number, seed: number): Uint8Array => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + seed) & 0xff;
  return b;
};

import { portChannel as channel } from '../../support/port-channel.js';

describe('ChunkBuffers', () => {
  it('hands out buffers of one size, keeps at most MAX_FREE_BUFFERS, drops anything else given back', () => {
    const pool = new ChunkBuffers();
    expect(pool.take().byteLength).toBe(POOLED_BYTES);
    pool.give([new ArrayBuffer(10), new ArrayBuffer(POOLED_BYTES - 1)]);
    expect(pool.free).toBe(0);
    const back = Array.from({ length: MAX_FREE_BUFFERS + 3 }, () => new ArrayBuffer(POOLED_BYTES));
    pool.give(back);
    expect(pool.free).toBe(MAX_FREE_BUFFERS);
    expect(back).toContain(pool.take());
    expect(pool.free).toBe(MAX_FREE_BUFFERS - 1);
  });

  it('only chunks from MIN_POOLED_BYTES up to POOLED_BYTES use one', () => {
    expect(usesPooledBuffer(MIN_POOLED_BYTES - 1)).toBe(false);
    expect(usesPooledBuffer(MIN_POOLED_BYTES)).toBe(true);
    expect(usesPooledBuffer(COALESCE_BYTES)).toBe(true);
    expect(usesPooledBuffer(POOLED_BYTES)).toBe(true);
    expect(usesPooledBuffer(POOLED_BYTES + 1)).toBe(false);
  });
});

describe('port sink with pooled buffers', () => {
  it('a large coalesced chunk goes out in a pooled buffer with its length; its stale tail is zeroed', async () => {
    const ch = channel();
    const pool = new ChunkBuffers();
    // A buffer given back full of an earlier response's bytes.
    const used = new ArrayBuffer(POOLED_BYTES);
    new Uint8Array(used).fill(0xaa);
    pool.give([used]);
    const sink = createPortSink(ch.port, new AbortController().signal, 3, undefined, pool);
    sink.head(200, []);
    await ch.waitFor(1); // the head
    // TLS-record-sized reads until a whole message is held.
    const parts = Array.from({ length: COALESCE_BYTES / 16_384 }, (_, i) => pattern(16_384, i + 1));
    for (const p of parts) await sink.chunk(p);
    await ch.waitFor(2);
    const m = ch.received[1] as Extract<CallMessage, { t: 'chunk' }>;
    expect(m.t).toBe('chunk');
    expect(m.len).toBe(COALESCE_BYTES);
    expect(m.data.byteLength).toBe(POOLED_BYTES);
    const got = new Uint8Array(m.data);
    expect(Buffer.from(got.subarray(0, COALESCE_BYTES)).equals(Buffer.concat(parts))).toBe(true);
    expect(got.subarray(COALESCE_BYTES).every((b) => b === 0)).toBe(true);
    expect(pool.free).toBe(0); // the given-back buffer was the one used
  });

  it('a small chunk (an SSE event) keeps an exact-size buffer of its own', async () => {
    const ch = channel();
    const pool = new ChunkBuffers();
    const sink = createPortSink(ch.port, new AbortController().signal, 3, undefined, pool);
    sink.head(200, []);
    await ch.waitFor(1);
    await sink.chunk(new TextEncoder().encode('data: 1\n\n'));
    await ch.waitFor(2);
    const m = ch.received[1] as Extract<CallMessage, { t: 'chunk' }>;
    expect(m.len).toBeUndefined();
    expect(m.data.byteLength).toBe(9);
  });

  it('copies the caller’s bytes at the flush and never transfers the caller’s own buffer', async () => {
    const ch = channel();
    const sink = createPortSink(ch.port, new AbortController().signal, 3);
    sink.head(200, []);
    await ch.waitFor(1);
    const src = pattern(1000, 9);
    await sink.chunk(src);
    const want = Buffer.from(src);
    await ch.waitFor(2);
    const m = ch.received[1] as Extract<CallMessage, { t: 'chunk' }>;
    expect(Buffer.from(m.data).equals(want)).toBe(true);
    // `src` spans its whole ArrayBuffer, so transferring that buffer would have been possible, and would
    // have detached undici's (or the scrubber's) memory under it.
    expect(src.byteLength).toBe(1000);
    expect(src.buffer.byteLength).toBe(1000);
  });
});

/** A client sink that records the bytes it was given, as they were when it was given them. */
function recordingSink(freed: RelaySink['chunkBytesFreed']): { sink: RelaySink; seen: Uint8Array[] } {
  const seen: Uint8Array[] = [];
  const sink: RelaySink = {
    head: () => undefined,
    chunk: (data) => void seen.push(data),
    end: () => undefined,
    full: () => undefined,
    error: () => undefined,
    ...(freed ? { chunkBytesFreed: freed } : {}),
  };
  return { sink, seen };
}

function source(): { src: CreditSource; events: string[]; recycled: ArrayBuffer[] } {
  const events: string[] = [];
  const recycled: ArrayBuffer[] = [];
  return {
    events,
    recycled,
    src: {
      grant: (n) => events.push(`grant ${n}`),
      abort: () => events.push('abort'),
      recycle: (b) => {
        events.push('recycle');
        recycled.push(b);
      },
    },
  };
}

describe('CallRelay gives pooled buffers back only when the transport is done with them', () => {
  const pooledChunk = (len: number): Extract<CallMessage, { t: 'chunk' }> => {
    const data = new ArrayBuffer(POOLED_BYTES);
    new Uint8Array(data).fill(1, 0, len).fill(0xee, len);
    return { t: 'chunk', id: 1, data, len };
  };

  it('the sink sees exactly `len` bytes, never the rest of the buffer', () => {
    const { sink, seen } = recordingSink('now');
    const relay = new CallRelay(sink, () => true).bind(source().src);
    relay.onMessage({ t: 'head', status: 200, headers: [] });
    relay.onMessage(pooledChunk(20_000));
    expect(seen[0]?.byteLength).toBe(20_000);
    expect(seen[0]?.every((b) => b === 1)).toBe(true);
  });

  it('`now` (uWS res.write copies): given back at once, before the credit, so that credit carries it', () => {
    const { sink } = recordingSink('now');
    const s = source();
    const relay = new CallRelay(sink, () => true).bind(s.src);
    relay.onMessage({ t: 'head', status: 200, headers: [] });
    const m = pooledChunk(COALESCE_BYTES);
    relay.onMessage(m);
    expect(s.events).toEqual(['recycle', 'grant 1']);
    expect(s.recycled).toEqual([m.data]);
  });

  it('the socket turn writer: only after this turn’s writes, not during it', async () => {
    // The socket's sink: chunk frames go through the turn writer, which releases them after its write.
    const box: TurnOutbox = { frames: [], bytes: 0 };
    let flushed = false;
    const writer = createTurnWriter<TurnOutbox>({
      outboxOf: (b) => b,
      write: () => void (flushed = true),
    });
    const sink: RelaySink = {
      ...recordingSink(undefined).sink,
      chunk: (data, written) => writer.send(box, data, written),
      chunkBytesFreed: 'written',
    };
    const s = source();
    const relay = new CallRelay(sink, () => true).bind(s.src);
    relay.onMessage({ t: 'head', status: 200, headers: [] });
    relay.onMessage(pooledChunk(COALESCE_BYTES));
    expect(s.events).toEqual(['grant 1']);
    await nextTurn();
    expect(flushed).toBe(true);
    expect(s.events).toEqual(['grant 1', 'recycle']);
  });

  it('`written` (a Node stream, e.g. the HTTPS proxy): only when the sink says its write let go of them', async () => {
    const held: (() => void)[] = [];
    const sink: RelaySink = {
      ...recordingSink(undefined).sink,
      chunk: (_data, written) => void (written && held.push(written)),
      chunkBytesFreed: 'written',
    };
    const s = source();
    const relay = new CallRelay(sink, () => true).bind(s.src);
    relay.onMessage({ t: 'head', status: 200, headers: [] });
    const m = pooledChunk(COALESCE_BYTES);
    relay.onMessage(m);
    await nextTurn();
    expect(s.events).toEqual(['grant 1']);
    expect(held).toHaveLength(1);
    held[0]?.();
    expect(s.recycled).toEqual([m.data]);
  });

  it('a transport that may hold the bytes (a Node stream) never gives them back; nor an exact-size chunk', async () => {
    const { sink } = recordingSink(undefined);
    const s = source();
    const relay = new CallRelay(sink, () => true).bind(s.src);
    relay.onMessage({ t: 'head', status: 200, headers: [] });
    relay.onMessage(pooledChunk(COALESCE_BYTES));
    const { sink: nowSink } = recordingSink('now');
    const s2 = source();
    const r2 = new CallRelay(nowSink, () => true).bind(s2.src);
    r2.onMessage({ t: 'head', status: 200, headers: [] });
    r2.onMessage({ t: 'chunk', data: new ArrayBuffer(30_000) });
    await nextTurn();
    expect(s.recycled).toEqual([]);
    expect(s2.recycled).toEqual([]);
  });
});

describe('PoolCall carries given-back buffers to the worker with its next credit', () => {
  function slot(): { slot: Slot; posted: [MainToWorkerPort, unknown][] } {
    const posted: [MainToWorkerPort, unknown][] = [];
    const s = {
      port: { ref: () => undefined, unref: () => undefined },
      // What PoolCall posts goes through the slot's outbox; here it is recorded as posted.
      out: { postNow: (m: MainToWorkerPort, t: unknown) => posted.push([m, t]) },
      calls: new Map(),
      dead: false,
      returning: [],
    } as unknown as Slot;
    return { slot: s, posted };
  }

  it('on any call of the slot, transferred, and at most MAX_RETURNING_BUFFERS held', () => {
    const { slot: sl, posted } = slot();
    const registry = new Set<CallHandle>();
    const a = new PoolCall(1, sl, { onMessage: () => undefined }, registry);
    const b = new PoolCall(2, sl, { onMessage: () => undefined }, registry);
    const bufs = Array.from({ length: MAX_RETURNING_BUFFERS + 2 }, () => new ArrayBuffer(POOLED_BYTES));
    for (const buf of bufs) a.recycle(buf);
    b.grant(1);
    const [msg, transfer] = posted[0] as [Extract<MainToWorkerPort, { t: 'credit' }>, ArrayBuffer[]];
    expect(msg).toMatchObject({ t: 'credit', id: 2, n: 1 });
    expect(msg.bufs).toEqual(bufs.slice(0, MAX_RETURNING_BUFFERS));
    expect(transfer).toBe(msg.bufs);
    // Sent once: the next credit carries none.
    b.grant(1);
    expect(posted[1]?.[0]).toEqual({ t: 'credit', id: 2, n: 1 });
  });

  it('over a real port the buffers arrive in the worker and leave the main thread', async () => {
    const { port1, port2 } = new MessageChannel();
    onTestFinished(() => {
      port1.close();
      port2.close();
    });
    const pool = new ChunkBuffers();
    const got = new Promise<void>((resolve) =>
      port2.on('message', (data: MainToWorkerPort | MainToWorkerPort[]) =>
        eachMessage(data, (m) => {
          if (m.t === 'credit' && m.bufs) pool.give(m.bufs);
          resolve();
        }),
      ),
    );
    const out = new PortOutbox(port1, 'immediate');
    const sl = { port: port1, out, calls: new Map(), dead: false, returning: [] } as unknown as Slot;
    const c = new PoolCall(1, sl, { onMessage: () => undefined }, new Set());
    const buf = new ArrayBuffer(POOLED_BYTES);
    c.recycle(buf);
    c.grant(1);
    expect(buf.byteLength).toBe(0); // transferred at once (a credit does not wait for the outbox's flush)
    await got;
    expect(pool.free).toBe(1);
  });
});

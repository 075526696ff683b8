/**
 * The request worker's port sink (src/core/threads/call-port.ts) over a real MessageChannel: what reaches the
 * main thread's end, in which messages, and when the pipeline is held back by credits.
 */
import type { MessagePort } from 'node:worker_threads';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import {
  COALESCE_BYTES,
  INITIAL_CREDITS,
  createPortSink,
  type CallMessage,
} from '../../../src/core/threads/call-port.js';
import { CallSignal } from '../../../src/core/threads/call-signal.js';

import { portChannel as channel } from '../../support/port-channel.js';

const bytes = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill);
const text = (ab: ArrayBuffer): string => Buffer.from(ab).toString('utf8');
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
/** The body bytes of each message that carries some (a head with its first bytes, or a chunk). */
const dataOf = (ms: readonly CallMessage[]): ArrayBuffer[] =>
  ms.flatMap((m) => (m.t === 'chunk' ? [m.data] : m.t === 'head' && m.data ? [m.data] : []));

describe('port sink coalescing', () => {
  it('a small response completed within one turn travels as one full message', async () => {
    const ch = channel();
    const sink = createPortSink(ch.port, new AbortController().signal, 7);
    sink.head(200, [['content-type', 'application/json']]);
    await sink.chunk(enc('{"a":'));
    await sink.chunk(enc('1}'));
    sink.end({ scrubbed: 2 });
    await sink.settled();
    await ch.waitFor(1);
    await nextTurn();
    expect(ch.received).toHaveLength(1);
    const m = ch.received[0] as Extract<CallMessage, { t: 'full' }>;
    expect(m).toMatchObject({ t: 'full', id: 7, status: 200, scrubbed: 2 });
    expect(m.headers).toEqual([['content-type', 'application/json']]);
    expect(text(m.body)).toBe('{"a":1}');
  });

  it('the chunks of one turn go as one message; a later turn (an SSE event) gets its own, at once', async () => {
    const ch = channel();
    const sink = createPortSink(ch.port, new AbortController().signal, 1);
    sink.head(200, [['content-type', 'text/event-stream']]);
    await sink.chunk(enc('data: 1\n'));
    await sink.chunk(enc('\n'));
    await ch.waitFor(1);
    // The first event rides with the head: one cross-thread hop to the first byte.
    expect(ch.received.map((m) => m.t)).toEqual(['head']);
    const head = ch.received[0] as Extract<CallMessage, { t: 'head' }>;
    expect(text(head.data as ArrayBuffer)).toBe('data: 1\n\n');
    await sink.chunk(enc('data: 2\n\n'));
    await ch.waitFor(2);
    expect(text((ch.received[1] as Extract<CallMessage, { t: 'chunk' }>).data)).toBe('data: 2\n\n');
    sink.end();
    await sink.settled();
    await ch.waitFor(3);
    expect(ch.received.map((m) => m.t)).toEqual(['head', 'chunk', 'end']);
  });

  it('a large body is split at COALESCE_BYTES and streamed, never sent as full', async () => {
    const ch = channel();
    const sink = createPortSink(ch.port, new AbortController().signal, 1);
    sink.head(200, []);
    for (let i = 0; i < 3; i++) await sink.chunk(bytes(COALESCE_BYTES / 2 + 1, i + 1));
    sink.end();
    await sink.settled();
    await ch.waitFor(3);
    const kinds = ch.received.map((m) => m.t);
    expect(kinds[0]).toBe('head');
    expect(kinds.at(-1)).toBe('end');
    expect(kinds).not.toContain('full');
    const chunks = dataOf(ch.received);
    expect(chunks.length).toBeGreaterThan(1);
    const total = chunks.reduce((n, c) => n + c.byteLength, 0);
    expect(total).toBe(3 * (COALESCE_BYTES / 2 + 1));
    expect(Math.max(...chunks.map((c) => c.byteLength))).toBeLessThanOrEqual(COALESCE_BYTES + 2);
    // Order of the bytes is kept across messages.
    const all = Buffer.concat(chunks.map((c) => Buffer.from(c)));
    expect(all[0]).toBe(1);
    expect(all[all.length - 1]).toBe(3);
  });

  it('without credits the pipeline waits once COALESCE_BYTES are held; a grant lets it go on', async () => {
    const ch = channel();
    const sink = createPortSink(ch.port, new AbortController().signal, 1);
    sink.head(200, []);
    for (let i = 0; i < INITIAL_CREDITS; i++) await sink.chunk(bytes(COALESCE_BYTES));
    // The first chunk went with the head: INITIAL_CREDITS messages, each holding a credit's worth.
    await ch.waitFor(INITIAL_CREDITS);
    expect(dataOf(ch.received)).toHaveLength(INITIAL_CREDITS);
    let passed = false;
    const blocked = sink.chunk(bytes(COALESCE_BYTES)).then(() => (passed = true));
    await nextTurn();
    await nextTurn();
    expect(passed).toBe(false);
    expect(ch.received).toHaveLength(INITIAL_CREDITS);
    sink.grant(1);
    await blocked;
    await ch.waitFor(1 + INITIAL_CREDITS);
    expect(ch.received.at(-1)?.t).toBe('chunk');
  });

  it('an error after a held head and chunk is posted after them, in order', async () => {
    const ch = channel();
    const sink = createPortSink(ch.port, new AbortController().signal, 3);
    sink.head(502, []);
    await sink.chunk(enc('partial'));
    sink.error({ error: 'upstream_unreachable', message: 'reset' });
    await sink.settled();
    await ch.waitFor(2);
    expect(ch.received.map((m) => m.t)).toEqual(['head', 'error']);
    expect(text((ch.received[0] as Extract<CallMessage, { t: 'head' }>).data as ArrayBuffer)).toBe('partial');
  });

  it('an error with nothing held is posted at the end of the callback, not a turn later', async () => {
    const posted: unknown[] = [];
    const port = { postMessage: (m: unknown) => posted.push(m) } as unknown as MessagePort;
    const sink = createPortSink(port, new AbortController().signal, 4);
    sink.error({ error: 'policy_violation', message: 'no' });
    await Promise.resolve(); // the outbox's microtask ran: no setImmediate in between
    expect(posted).toEqual([{ t: 'error', id: 4, error: { error: 'policy_violation', message: 'no' } }]);
  });

  it('an abort while waiting for credit drops what is held and lets the terminal message out', async () => {
    const ch = channel();
    const ctl = new CallSignal(); // what the request worker gives every call
    const sink = createPortSink(ch.port, ctl, 1);
    sink.head(200, []);
    for (let i = 0; i < INITIAL_CREDITS; i++) await sink.chunk(bytes(COALESCE_BYTES));
    const blocked = sink.chunk(bytes(COALESCE_BYTES));
    await nextTurn();
    ctl.abort();
    await blocked;
    sink.error({ error: 'upstream_unreachable', message: 'invocation cancelled by the caller' });
    await sink.settled();
    await ch.waitFor(1 + INITIAL_CREDITS);
    expect(ch.received.map((m) => m.t)).toEqual([
      'head',
      ...Array(INITIAL_CREDITS - 1).fill('chunk'),
      'error',
    ]);
  });

  it('a buffered (non-stream) full goes out at the end of the callback with the body transferred', async () => {
    const posted: [unknown, unknown][] = [];
    const port = { postMessage: (m: unknown, t: unknown) => posted.push([m, t]) } as unknown as MessagePort;
    const sink = createPortSink(port, new AbortController().signal, 9);
    sink.full(201, [['x', 'y']], enc('done'));
    await Promise.resolve();
    expect(posted).toHaveLength(1);
    const [m, transfer] = posted[0] as [Extract<CallMessage, { t: 'full' }>, ArrayBuffer[]];
    expect(m).toMatchObject({ t: 'full', id: 9, status: 201 });
    expect(transfer).toEqual([m.body]);
  });
});

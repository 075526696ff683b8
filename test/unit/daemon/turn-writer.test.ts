/**
 * The socket's per-turn writer (src/front/turn-writer.ts): frames sent to a connection during one
 * event-loop turn reach it as one write, in order, after the turn's callbacks ran; a closed connection's
 * frames are dropped; a forced flush writes at once.
 */
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { createTurnWriter, type TurnOutbox } from '../../../src/front/turn-writer.js';
import type { Message } from '../../../src/front/uws.js';

interface FakeSocket {
  readonly name: string;
  open: boolean;
  readonly outbox: TurnOutbox;
}

const text = (f: Message): string => Buffer.concat(f instanceof Uint8Array ? [f] : [...f]).toString();

function harness() {
  const writes: [string, string[]][] = [];
  const relieved: string[] = [];
  const writer = createTurnWriter<FakeSocket>({
    outboxOf: (s) => (s.open ? s.outbox : undefined),
    write: (s, frames) => void writes.push([s.name, frames.map(text)]),
    afterWrite: (s) => void relieved.push(s.name),
  });
  const socket = (name: string): FakeSocket => ({ name, open: true, outbox: { frames: [], bytes: 0 } });
  return { writes, relieved, writer, socket };
}
const frame = (s: string): Uint8Array => Buffer.from(s);

describe('turn writer', () => {
  it('a frame in parts (a body chunk behind its msgpack head) counts all its bytes and is written whole', async () => {
    const { writes, writer, socket } = harness();
    const a = socket('a');
    writer.send(a, frame('x'));
    writer.send(a, [frame('head:'), frame('body')]);
    expect(a.outbox.bytes).toBe(1 + 5 + 4);
    await nextTurn();
    expect(writes).toEqual([['a', ['x', 'head:body']]]);
    expect(a.outbox.bytes).toBe(0);
  });

  it('writes each connection’s frames of one turn once, in order, after the turn', async () => {
    const { writes, relieved, writer, socket } = harness();
    const a = socket('a');
    const b = socket('b');
    writer.send(a, frame('a1'));
    writer.send(b, frame('b1'));
    writer.send(a, frame('a2'));
    writer.send(a, frame('a3'));
    expect(writes).toEqual([]); // nothing written inside the turn
    expect(a.outbox.bytes).toBe(6); // counted as unsent meanwhile (backpressure sees it)
    await nextTurn();
    expect(writes).toEqual([
      ['a', ['a1', 'a2', 'a3']],
      ['b', ['b1']],
    ]);
    expect(relieved).toEqual(['a', 'b']);
    expect(a.outbox).toEqual({ frames: [], bytes: 0 });
    writer.send(a, frame('a4')); // the next turn gets a write of its own
    await nextTurn();
    expect(writes.at(-1)).toEqual(['a', ['a4']]);
  });

  it('drops the frames of a connection that closed before the turn ended', async () => {
    const { writes, writer, socket } = harness();
    const a = socket('a');
    writer.send(a, frame('lost'));
    a.open = false;
    writer.forget(a);
    writer.send(a, frame('after close'));
    await nextTurn();
    expect(writes).toEqual([]);
  });

  it('a frame’s `released` runs after the write that took it, or when its frames are dropped', async () => {
    const { writes, writer, socket } = harness();
    const a = socket('a');
    const b = socket('b');
    const released: string[] = [];
    writer.send(a, frame('a1'), () => released.push(`a1 after ${writes.length} writes`));
    writer.send(b, frame('b1'), () => released.push('b1'));
    expect(released).toEqual([]); // not inside the turn: the bytes still wait in the outbox
    writer.forget(b); // the connection closes (socket-server forgets it, then marks it closed): dropped
    b.open = false;
    writer.send(b, frame('b2'), () => released.push('b2')); // closed: released at once
    expect(released).toEqual(['b1', 'b2']);
    await nextTurn();
    expect(released).toEqual(['b1', 'b2', 'a1 after 1 writes']);
    expect(a.outbox.released).toBeUndefined();
  });

  it('flush writes what a connection holds at once (before a close frame), and only once', async () => {
    const { writes, writer, socket } = harness();
    const a = socket('a');
    writer.send(a, frame('bye'));
    writer.flush(a);
    expect(writes).toEqual([['a', ['bye']]]);
    await nextTurn();
    expect(writes).toHaveLength(1);
  });

  it('frames sent while a write relieves held calls go out in the same or the next turn, never lost', async () => {
    const writes: string[][] = [];
    const a: FakeSocket = { name: 'a', open: true, outbox: { frames: [], bytes: 0 } };
    let relieved = false;
    const writer = createTurnWriter<FakeSocket>({
      outboxOf: (s) => (s.open ? s.outbox : undefined),
      write: (_s, frames) => void writes.push(frames.map(text)),
      afterWrite: (s) => {
        if (relieved) return;
        relieved = true;
        writer.send(s, frame('started by relief'));
      },
    });
    writer.send(a, frame('first'));
    await nextTurn();
    await nextTurn();
    expect(writes).toEqual([['first'], ['started by relief']]);
  });
});

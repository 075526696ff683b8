/**
 * Per-call objects let go of each other when their call is over (issue 12: GC). A call object that was in
 * flight during a scavenge sits in V8's old space until the next full collection; whatever young objects it
 * still points to survive with it and are promoted in turn. So a finished CallRelay (src/front/relay.ts) no
 * longer holds its transport's sink, a finished PoolCall (src/pool/pool-call.ts) no longer holds its
 * handlers, a disposed CallSignal (src/core/threads/call-signal.ts) no longer holds its listeners, and an
 * ended call's entry in a request worker's call map (src/request-worker/active-calls.ts) no longer holds its
 * sink and signal (a Map table replaced by a rehash keeps its entries until the next full collection) —
 * checked here with a real collection: the released object is collected while its holder is still alive.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { startRelayedCall, type CallRelay, type RelaySink } from '../../../src/front/relay.js';
import { PoolCall, type CallHandle, type CallHandlers } from '../../../src/pool/pool-call.js';
import type { Slot } from '../../../src/pool/request-workers.js';
import { CallSignal } from '../../../src/core/threads/call-signal.js';
import { createPortSink } from '../../../src/core/threads/call-port.js';
import { ActiveCalls, type ActiveCall } from '../../../src/request-worker/active-calls.js';
import { MessageChannel, type MessagePort } from 'node:worker_threads';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Whether the object behind `ref` was collected (after the current job, so the WeakRef does not pin it). */
async function collected(ref: WeakRef<object>): Promise<boolean> {
  await nextTurn();
  gc();
  await nextTurn();
  gc();
  return ref.deref() === undefined;
}

function sinkLog(log: string[]): RelaySink {
  return {
    head: (status) => log.push(`head ${status}`),
    chunk: () => log.push('chunk'),
    end: () => log.push('end'),
    full: (status) => log.push(`full ${status}`),
    error: (e) => log.push(`error ${e.error}`),
    finished: () => log.push('finished'),
  };
}

const source = { grant: () => undefined, abort: () => undefined };

/** A relay whose sink is reachable only through the relay; returns the relay and a weak ref to the sink. */
function relayWithSink(log: string[]): { relay: CallRelay; sink: WeakRef<RelaySink> } {
  const sink = sinkLog(log);
  const relay = startRelayedCall({ startCall: () => source }, {} as never, sink, () => true);
  return { relay, sink: new WeakRef(sink) };
}

describe('a finished CallRelay lets go of its sink', () => {
  for (const terminal of ['full', 'end', 'error'] as const) {
    it(`after ${terminal}`, async () => {
      const log: string[] = [];
      const { relay, sink } = relayWithSink(log);
      if (terminal === 'full')
        relay.onMessage({ t: 'full', status: 200, headers: [], body: new ArrayBuffer(2) });
      else if (terminal === 'end') {
        relay.onMessage({ t: 'head', status: 200, headers: [] });
        relay.onMessage({ t: 'end' });
      } else relay.onMessage({ t: 'error', error: { error: 'internal', message: 'x' } });
      expect(log.at(-1)).toBe('finished');
      expect(await collected(sink)).toBe(true);
      // Still a working (inert) relay: nothing more is delivered, nothing throws.
      relay.onMessage({ t: 'chunk', data: new ArrayBuffer(1) });
      relay.stop();
      expect(relay.drained()).toBe(false);
      expect(relay.finished).toBe(true);
      expect(log.filter((l) => l === 'finished')).toHaveLength(1);
    });
  }

  it('after stop', async () => {
    const log: string[] = [];
    const { relay, sink } = relayWithSink(log);
    relay.stop();
    expect(log).toEqual(['finished']);
    expect(await collected(sink)).toBe(true);
    expect(relay.finished).toBe(true);
  });

  it('a call in flight keeps its sink', async () => {
    const log: string[] = [];
    const { relay, sink } = relayWithSink(log);
    relay.onMessage({ t: 'head', status: 200, headers: [] });
    expect(await collected(sink)).toBe(false);
    relay.onMessage({ t: 'end' });
    expect(log).toEqual(['head 200', 'end', 'finished']);
  });
});

describe('a finished PoolCall lets go of its handlers', () => {
  function fakeSlot(): Slot {
    return {
      port: { ref: () => undefined, unref: () => undefined },
      out: { postMessage: () => undefined, postNow: () => undefined },
      calls: new Map(),
    } as unknown as Slot;
  }

  it('after finish, and messages after it reach nobody', async () => {
    const got: string[] = [];
    const registry = new Set<CallHandle>();
    const make = (): { call: PoolCall; handlers: WeakRef<CallHandlers> } => {
      const handlers: CallHandlers = { onMessage: (m) => got.push(m.t) };
      const c = new PoolCall(1, fakeSlot(), handlers, registry);
      registry.add(c);
      return { call: c, handlers: new WeakRef(handlers) };
    };
    const { call, handlers } = make();
    call.onMessage({ t: 'head', id: 1, status: 200, headers: [] });
    expect(await collected(handlers)).toBe(false);
    call.finish();
    expect(registry.size).toBe(0);
    expect(await collected(handlers)).toBe(true);
    call.onMessage({ t: 'end', id: 1 });
    expect(got).toEqual(['head']);
    await expect(call.done).resolves.toBeUndefined();
  });
});

describe('a disposed CallSignal lets go of its listeners', () => {
  it('after dispose, and a later abort runs none of them', async () => {
    const signal = new CallSignal();
    let ran = 0;
    const add = (): WeakRef<() => void> => {
      const listener = (): void => {
        ran++;
      };
      signal.addEventListener('abort', listener);
      return new WeakRef(listener);
    };
    const listener = add();
    expect(await collected(listener)).toBe(false);
    signal.dispose();
    expect(await collected(listener)).toBe(true);
    signal.abort();
    expect(ran).toBe(0);
    expect(signal.aborted).toBe(true);
  });
});

describe("an ended request-worker call's entry lets go of its sink and signal", () => {
  /** One call started in `calls`; its sink and signal are reachable only through the entry. */
  function startOne(calls: ActiveCalls, id: number, port: MessagePort) {
    const cancel = new CallSignal();
    const sink = createPortSink(port, cancel, id);
    const entry = calls.start(id, sink, cancel);
    return { entry, sink: new WeakRef(sink), cancel: new WeakRef(cancel) };
  }

  it('keeps them while the call runs, drops them (and the id) when it ends', async () => {
    const { port1, port2 } = new MessageChannel();
    try {
      const calls = new ActiveCalls();
      const { entry, sink, cancel } = startOne(calls, 7, port1);
      // Held as a replaced Map table would hold it: the entry itself stays reachable.
      const heldByOldTable: ActiveCall[] = [entry];
      expect(await collected(sink)).toBe(false);
      expect(calls.get(7)?.sink).toBe(sink.deref());
      calls.end(7, entry);
      expect(calls.get(7)).toBeUndefined();
      expect(await collected(sink)).toBe(true);
      expect(await collected(cancel)).toBe(true);
      expect(heldByOldTable[0]).toEqual({ sink: undefined, cancel: undefined, approved: undefined });
    } finally {
      port1.close();
      port2.close();
    }
  });
});

/**
 * The main thread's one credit/backpressure relay (src/front/relay.ts). The worker side is the real port
 * sink (src/core/threads/call-port.ts) on a real MessageChannel; the client side is a sink whose send buffer
 * the test fills and drains.
 */
import { MessageChannel } from 'node:worker_threads';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CallRelay, Credits, startRelayedCall, type RelaySink } from '../../../src/front/relay.js';
import {
  COALESCE_BYTES,
  INITIAL_CREDITS,
  createPortSink,
  type CallMessage,
  type MainToWorkerPort,
} from '../../../src/core/threads/call-port.js';
import type { WireError } from '../../../src/core/errors.js';
import { eachMessage } from '../../../src/core/threads/port-outbox.js';

/** A client connection: records what it was sent; `room` says whether its buffer is below high water. */
function client() {
  const log: string[] = [];
  const state = { room: true, finished: 0, body: 0 };
  const sink: RelaySink = {
    head: (status) => log.push(`head ${status}`),
    chunk: (data) => {
      state.body += data.byteLength;
      log.push('chunk');
    },
    end: (scrubbed) => log.push(`end${scrubbed ? ` ${scrubbed}` : ''}`),
    full: (status, _h, body) => log.push(`full ${status} ${body.byteLength}`),
    error: (e: WireError, headSent) => log.push(`error ${e.error}${headSent ? ' after head' : ''}`),
    finished: () => state.finished++,
  };
  return { log, state, sink };
}

/** A call: worker-side port sink ↔ real MessageChannel ↔ main-side relay. */
function call(sink: RelaySink, hasRoom: () => boolean, onStarved?: (r: CallRelay) => void) {
  const { port1: main, port2: worker } = new MessageChannel();
  const ctl = new AbortController();
  const out = createPortSink(worker, ctl.signal, 1);
  const credits = { granted: 0, aborted: 0 };
  worker.on('message', (m: MainToWorkerPort) => {
    if (m.t === 'credit') {
      credits.granted += m.n;
      out.grant(m.n);
    } else if (m.t === 'abort') {
      credits.aborted++;
      ctl.abort();
    }
  });
  const relay = startRelayedCall(
    {
      startCall: (_task, handlers) => {
        main.on('message', (data: CallMessage | CallMessage[]) =>
          eachMessage(data, (m) => handlers.onMessage(m)),
        );
        return {
          grant: (n) => main.postMessage({ t: 'credit', id: 1, n } satisfies MainToWorkerPort),
          abort: () => main.postMessage({ t: 'abort', id: 1 } satisfies MainToWorkerPort),
        };
      },
    },
    { envelope: { capability: 'x', request: { method: 'GET', path: '/' } }, context: {}, stream: true },
    sink,
    hasRoom,
    onStarved,
  );
  onTestFinished(() => {
    main.close();
    worker.close();
  });
  return { relay, out, ctl, credits };
}

const until = async (cond: () => boolean): Promise<void> => {
  for (let i = 0; i < 1000 && !cond(); i++) await nextTurn();
  expect(cond()).toBe(true);
};

describe('Credits', () => {
  const source = () => {
    const s = { granted: [] as number[], aborted: 0 };
    return { s, src: { grant: (n: number) => s.granted.push(n), abort: () => s.aborted++ } };
  };

  it('gives a credit back per chunk while there is room, owes them while full, pays on drain', () => {
    const { s, src } = source();
    let room = true;
    let starvedCalls = 0;
    const c = new Credits(
      src,
      () => room,
      () => starvedCalls++,
    );
    c.written();
    expect(s.granted).toEqual([1]);
    room = false;
    c.written();
    c.written();
    expect(c.starved).toBe(true);
    expect(starvedCalls).toBe(1);
    expect(c.drained()).toBe(false); // still full: nothing paid
    room = true;
    // While credits are owed, a chunk's credit joins them (order: the owed ones go first, on drain).
    c.written();
    expect(s.granted).toEqual([1]);
    expect(c.drained()).toBe(true);
    expect(s.granted).toEqual([1, 3]);
    expect(c.starved).toBe(false);
    expect(c.drained()).toBe(false);
  });

  it('cancel aborts and grants one credit so a worker waiting for credit sees the abort', () => {
    const { s, src } = source();
    const c = new Credits(src, () => false);
    c.written();
    c.cancel();
    expect(s.aborted).toBe(1);
    expect(s.granted).toEqual([1]);
    expect(c.starved).toBe(false);
  });
});

describe('CallRelay over a real port', () => {
  it('a small streamed response arrives as one full message', async () => {
    const c = client();
    const { out } = call(c.sink, () => true);
    out.head(200, []);
    await out.chunk(new Uint8Array(10));
    out.end();
    await out.settled();
    await until(() => c.state.finished === 1);
    expect(c.log).toEqual(['full 200 10']);
  });

  it('a head carrying the first bytes: the client gets the head, then the chunk; its credit goes back', async () => {
    const c = client();
    const { out, credits } = call(c.sink, () => true);
    out.head(200, [['content-type', 'text/event-stream']]);
    await out.chunk(new Uint8Array(7));
    await until(() => c.log.length === 2);
    expect(c.log).toEqual(['head 200', 'chunk']);
    expect(c.state.body).toBe(7);
    await until(() => credits.granted === 1);
    out.end();
    await out.settled();
    await until(() => c.state.finished === 1);
    expect(c.log).toEqual(['head 200', 'chunk', 'end']);
  });

  it('a head carrying the first bytes is written together (one corked write) when the transport can', async () => {
    const c = client();
    const groups: string[][] = [];
    c.sink.together = (writes) => {
      const before = c.log.length;
      writes();
      groups.push(c.log.slice(before));
    };
    const { out } = call(c.sink, () => true);
    out.head(200, [['content-type', 'text/event-stream']]);
    await out.chunk(new Uint8Array(3));
    await until(() => c.log.length === 2);
    expect(groups).toEqual([['head 200', 'chunk']]);
    await out.chunk(new Uint8Array(2)); // a later chunk is a write of its own
    await until(() => c.log.length === 3);
    expect(groups).toHaveLength(1);
  });

  it('backpressure: a client that stops reading stops the worker; drain resumes it', async () => {
    const c = client();
    const starved: CallRelay[] = [];
    const { relay, out, credits } = call(
      c.sink,
      () => c.state.room,
      (r) => starved.push(r),
    );
    out.head(200, []);
    c.state.room = false;
    let sent = 0;
    let done = false;
    const pump = (async () => {
      for (let i = 0; i < INITIAL_CREDITS + 4; i++) {
        await out.chunk(new Uint8Array(COALESCE_BYTES));
        sent++;
      }
      out.end();
      await out.settled();
      done = true;
    })();
    await until(() => c.log.filter((l) => l === 'chunk').length === INITIAL_CREDITS);
    for (let i = 0; i < 5; i++) await nextTurn();
    expect(done).toBe(false);
    expect(credits.granted).toBe(0);
    expect(starved).toEqual([relay]);
    expect(relay.starved).toBe(true);
    expect(sent).toBeLessThanOrEqual(INITIAL_CREDITS + 1); // one more may be held, never more
    c.state.room = true;
    expect(relay.drained()).toBe(true);
    await pump;
    await until(() => c.state.finished === 1);
    expect(c.log.at(-1)).toBe('end');
    expect(c.state.body).toBe((INITIAL_CREDITS + 4) * COALESCE_BYTES);
  });

  it('cancel: the worker sees the abort even while waiting for credit; the error is still delivered', async () => {
    const c = client();
    const { relay, out, ctl, credits } = call(c.sink, () => false);
    out.head(200, []);
    for (let i = 0; i < INITIAL_CREDITS; i++) await out.chunk(new Uint8Array(COALESCE_BYTES));
    const blocked = out.chunk(new Uint8Array(COALESCE_BYTES));
    await until(() => c.log.filter((l) => l === 'chunk').length === INITIAL_CREDITS);
    relay.cancel();
    await blocked; // woken by the abort (and the extra credit)
    expect(ctl.signal.aborted).toBe(true);
    expect(credits.aborted).toBe(1);
    out.error({ error: 'upstream_unreachable', message: 'invocation cancelled by the caller' });
    await out.settled();
    await until(() => c.state.finished === 1);
    expect(c.log.at(-1)).toBe('error upstream_unreachable after head');
  });

  it('stop: the client is gone; nothing more is delivered and finished runs once', async () => {
    const c = client();
    const { relay, out, credits } = call(c.sink, () => true);
    out.head(200, []);
    await until(() => c.log.length === 1);
    relay.stop();
    relay.stop();
    expect(c.state.finished).toBe(1);
    await until(() => credits.aborted === 1);
    out.end();
    await out.settled();
    for (let i = 0; i < 5; i++) await nextTurn();
    expect(c.log).toEqual(['head 200']);
    expect(relay.finished).toBe(true);
  });

  it('an error before any head reports headSent false; one terminal message only', () => {
    const c = client();
    const relay = new CallRelay(c.sink, () => true).bind({ grant: () => undefined, abort: () => undefined });
    relay.onMessage({ t: 'error', error: { error: 'policy_violation', message: 'no' } });
    relay.onMessage({ t: 'end' });
    relay.onMessage({ t: 'chunk', data: new ArrayBuffer(1) });
    expect(c.log).toEqual(['error policy_violation']);
    expect(c.state.finished).toBe(1);
    expect(relay.answered).toBe(false);
  });

  it('a call the pool refuses throws to the transport (it answers with that error)', () => {
    const c = client();
    expect(() =>
      startRelayedCall(
        {
          startCall: () => {
            throw Object.assign(new Error('busy'), { code: 'daemon_busy' });
          },
        },
        { envelopeJson: new ArrayBuffer(2), context: {}, stream: true },
        c.sink,
        () => true,
      ),
    ).toThrow('busy');
    expect(c.state.finished).toBe(0);
  });
});

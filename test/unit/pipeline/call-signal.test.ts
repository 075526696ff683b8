/**
 * A request worker's per-call cancellation signal (src/core/threads/call-signal.ts): AbortSignal's
 * semantics for what the pipeline uses, and undici honouring it as a request's signal (a real server on
 * 127.0.0.1 that never answers, so only the abort can end the request).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';
import { describe, expect, it, onTestFinished } from 'vitest';
import { CallSignal } from '../../../src/core/threads/call-signal.js';
import { AivaultError } from '../../../src/core/errors.js';

describe('CallSignal', () => {
  it('runs each listener once, in order, with the reason set before they run', () => {
    const s = new CallSignal();
    const seen: unknown[] = [];
    s.addEventListener('abort', () => seen.push(['a', s.aborted, s.reason]));
    s.addEventListener('abort', () => seen.push(['b', s.aborted, s.reason]), { once: true });
    expect(s.aborted).toBe(false);
    expect(s.reason).toBeUndefined();
    const why = new AivaultError('upstream_unreachable', 'invocation cancelled by the caller');
    s.abort(why);
    s.abort(new Error('second abort is ignored'));
    expect(seen).toEqual([
      ['a', true, why],
      ['b', true, why],
    ]);
    expect(s.reason).toBe(why);
  });

  it('a removed listener does not run; one added after the abort never runs', () => {
    const s = new CallSignal();
    let runs = 0;
    const fn = (): void => void runs++;
    s.addEventListener('abort', fn);
    s.removeEventListener('abort', fn);
    s.removeEventListener('abort', fn); // removing twice is harmless
    s.abort();
    s.addEventListener('abort', fn);
    expect(runs).toBe(0);
  });

  it('aborting without a reason gives an AbortError, as AbortController does', () => {
    const s = new CallSignal();
    s.abort();
    expect((s.reason as DOMException).name).toBe('AbortError');
  });

  it('a listener that throws does not keep the others from running; abort() then throws its error', () => {
    const s = new CallSignal();
    let second = false;
    s.addEventListener('abort', () => {
      throw new Error('listener failed');
    });
    s.addEventListener('abort', () => void (second = true));
    expect(() => s.abort()).toThrow('listener failed');
    expect(second).toBe(true);
    expect(s.aborted).toBe(true);
  });

  it('undici takes it as a request signal: aborting ends a request still waiting for its head', async () => {
    let arrived!: () => void;
    const requested = new Promise<void>((r) => (arrived = r));
    let closed!: () => void;
    const connectionClosed = new Promise<void>((r) => (closed = r));
    const server: Server = createServer((req) => {
      arrived(); // never answer: only the abort can end this request
      req.socket.once('close', closed);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
    const client = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    onTestFinished(() => client.destroy());
    const s = new CallSignal();
    const why = new AivaultError('upstream_unreachable', 'invocation cancelled by the caller');
    const req = client.request({ path: '/', method: 'GET', signal: s as unknown as AbortSignal });
    await requested;
    s.abort(why);
    await expect(req).rejects.toBe(why);
    await connectionClosed; // the connection was torn down, not left waiting
  });
});

/**
 * The upstream body the pipeline reads (src/request-worker/pipeline/upstream-response.ts), against the real
 * HTTPS test upstream: a reader that stops holds the upstream back, a dropped body aborts the exchange,
 * `dump` keeps the connection for the next call, `whole` enforces a size check, a signal aborts before
 * and after the head, and a transport failure after the head reaches the reader.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { Upstream } from '../../../src/request-worker/pipeline/upstream.js';
import { BODY_HIGH_WATER_BYTES } from '../../../src/request-worker/pipeline/upstream-response.js';
import { CallSignal } from '../../../src/core/threads/call-signal.js';
import { AivaultError } from '../../../src/core/errors.js';
import { startHttpsUpstream, type HttpsUpstream } from '../../support/https-upstream.js';
import { createTestCa } from '../../support/test-ca.js';

let up: HttpsUpstream;
let u: Upstream;
beforeAll(async () => {
  up = await startHttpsUpstream();
  u = new Upstream({
    dev: {
      resolve: new Map([['upstream.test', { address: '127.0.0.1', port: up.port }]]),
      caCertPath: createTestCa().caCertPath,
      allowNonDefaultPorts: false,
      http1Only: true,
    },
    keepAliveTimeoutMs: 60_000,
  });
});
afterAll(async () => {
  await u.close();
  await up.close();
});

const get = (pathAndQuery: string, signal?: CallSignal): ReturnType<Upstream['request']> =>
  u.request({
    host: 'upstream.test',
    port: 443,
    method: 'GET',
    pathAndQuery,
    headers: [],
    ...(signal ? { signal } : {}),
  });

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 20));

const settle = async (read: () => number): Promise<number> => {
  let last = -1;
  while (read() !== last) {
    last = read();
    await new Promise((r) => setTimeout(r, 200));
  }
  return last;
};

describe('the upstream response body', () => {
  it('streams every byte in order to a reader that keeps reading', async () => {
    const res = await get('/large?bytes=3000000');
    let total = 0;
    for await (const chunk of res.body) {
      expect(chunk.every((b) => b === chunk[0])).toBe(true);
      total += chunk.byteLength;
    }
    expect(total).toBe(3_000_000);
  });

  it('holds the upstream back while the reader does not read, and lets it go on when it reads again', async () => {
    const before = up.largeBytesWritten.count;
    const res = await get(`/large?bytes=${64 * 1024 * 1024}`);
    const held = (await settle(() => up.largeBytesWritten.count)) - before;
    // The queue stops at BODY_HIGH_WATER_BYTES; the rest is socket and TLS buffers, far below 64 MiB.
    expect(held).toBeLessThan(16 * 1024 * 1024);
    const aborted = up.aborted.count;
    let read = 0;
    for await (const chunk of res.body) {
      read += chunk.byteLength;
      if (read > held + 4 * BODY_HIGH_WATER_BYTES) break; // leaving the loop drops the body
    }
    expect(up.largeBytesWritten.count - before).toBeGreaterThan(held);
    // Leaving the loop dropped the body and aborted the exchange: the upstream saw its response abandoned.
    await expect.poll(() => up.aborted.count, { timeout: 3000 }).toBe(aborted + 1);
  });

  it('destroy() mid-body abandons the response at the upstream', async () => {
    const aborted = up.aborted.count;
    const res = await get('/sse?n=50&interval=100');
    const it = res.body[Symbol.asyncIterator]();
    expect((await it.next()).done).toBe(false);
    res.body.destroy();
    await expect.poll(() => up.aborted.count, { timeout: 3000 }).toBe(aborted + 1);
  });

  it('whole() returns one owned buffer, and rejects (aborting) when the check throws', async () => {
    const ok = await get('/large?bytes=200000');
    const body = await ok.body.whole();
    expect(body.byteLength).toBe(200_000);
    expect(body.buffer.byteLength).toBe(200_000); // its own buffer: transferable to another thread

    const big = await get(`/large?bytes=${32 * 1024 * 1024}`);
    const err = await big.body
      .whole((n) => {
        if (n > 100_000) throw new AivaultError('body_too_large', 'too large');
      })
      .catch((e: unknown) => e);
    expect((err as AivaultError).code).toBe('body_too_large');
  });

  it('dump() reads a small rest so the connection carries the next call', async () => {
    const own = new Upstream({
      dev: {
        resolve: new Map([['upstream.test', { address: '127.0.0.1', port: up.port }]]),
        caCertPath: createTestCa().caCertPath,
        allowNonDefaultPorts: false,
        http1Only: true,
      },
    });
    onTestFinished(() => own.close());
    const call = (pathAndQuery: string): ReturnType<Upstream['request']> =>
      own.request({ host: 'upstream.test', port: 443, method: 'GET', pathAndQuery, headers: [] });
    // Earlier tests' dials may still be completing their handshakes.
    const connections = await settle(() => up.connections.count);
    const first = await call('/large?bytes=50000');
    await first.body.dump();
    await tick(); // undici hands a finished connection back on a later turn
    const second = await call('/echo');
    expect(second.statusCode).toBe(200);
    await second.body.dump();
    expect(up.connections.count).toBe(connections + 1);
    await tick();
    // Past the limit the rest is not worth reading: the connection is given up instead.
    const big = await call(`/large?bytes=${16 * 1024 * 1024}`);
    await big.body.dump();
    await tick();
    await (await call('/echo')).body.dump();
    expect(up.connections.count).toBe(connections + 2);
  });

  it('a signal aborts before the head (upstream_unreachable) and after it (the reader gets the reason)', async () => {
    const deadline = new AivaultError('upstream_unreachable', 'invocation timed out after 100 ms');
    const early = new CallSignal();
    const pending = get('/stall', early);
    setTimeout(() => early.abort(deadline), 100);
    const e1 = await pending.catch((e: unknown) => e);
    expect(e1).toBe(deadline); // the signal's reason itself, as the pipeline reports it

    const late = new CallSignal();
    const res = await get('/sse?n=50&interval=100', late);
    const it = res.body[Symbol.asyncIterator]();
    await it.next();
    late.abort(deadline);
    const e2 = await it.next().catch((e: unknown) => e);
    expect(e2).toBe(deadline);

    const already = new CallSignal();
    already.abort(deadline);
    expect(await get('/echo', already).catch((e: unknown) => e)).toBe(deadline);
  });

  it('a connection cut after the head fails the reader with the transport error, never a clean end', async () => {
    const res = await get('/reset');
    expect(res.statusCode).toBe(200);
    const err = await res.body.text().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as { code?: string }).code).toMatch(/^UND_ERR_/);
  });
});

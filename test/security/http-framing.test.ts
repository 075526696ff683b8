/**
 * Issue 19 finding 5 (HTTP strictness): a same-user process talks raw HTTP/1.1 to the loopback listener to
 * smuggle a second request past the token check (two Content-Length headers, where the first wins; a
 * `Transfer-Encoding: gzip, chunked` read as chunked) or to tie up a connection (huge header blocks,
 * pipelining). Stopped by: src/front/http-strict.ts refuses ambiguous framing with 400/501 and oversize
 * headers with 431, closing the connection; pipelined requests are answered in order or the connection is
 * closed, never left hanging.
 */
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpAttackEnv, type AttackEnv } from './support/attack-env.js';

let a: AttackEnv;
let port = 0;

beforeAll(async () => {
  ({ env: a, port } = await startHttpAttackEnv());
}, 120_000);
afterAll(() => a?.close());

interface RawOutcome {
  /** Status codes of the responses received, in order. */
  statuses: number[];
  text: string;
  /** The daemon closed the connection (rather than the test giving up). */
  closed: boolean;
  ms: number;
}

/** Write raw bytes; read until the daemon closes or `waitMs` passes (then the test closes it). */
function raw(data: string, waitMs = 5000): Promise<RawOutcome> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let text = '';
    let settled = false;
    const finish = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      s.destroy();
      const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
      resolve({ statuses, text, closed, ms: Date.now() - t0 });
    };
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('close', () => finish(true));
    s.on('error', () => finish(true));
    const timer = setTimeout(() => finish(false), waitMs);
    s.write(data);
  });
}

/**
 * Refused: the connection is closed and the request smuggled after the body is never answered. The status
 * line arrives unless uWS saw the smuggled bytes in the same read, then it only closes.
 */
function expectRefused(o: RawOutcome, status: number): void {
  expect(o.closed).toBe(true);
  expect(o.statuses.length).toBeLessThanOrEqual(1);
  if (o.statuses.length === 1) expect(o.statuses[0]).toBe(status);
  expect(o.text).not.toContain('"vault"'); // the smuggled /aivault/health answer
}

const SMUGGLED = 'GET /aivault/health HTTP/1.1\r\nHost: x\r\n\r\n';
const head = (lines: string[]): string => `${lines.join('\r\n')}\r\n\r\n`;

describe('attack: ambiguous request framing on the loopback HTTP listener', () => {
  it('two different Content-Length headers → 400, connection closed, the smuggled request unanswered', async () => {
    const body = `{}${SMUGGLED}`;
    const o = await raw(
      head([
        'POST /aivault/proxy HTTP/1.1',
        'Host: 127.0.0.1',
        'Content-Length: 2',
        `Content-Length: ${body.length}`,
      ]) + body,
    );
    expectRefused(o, 400);
  });

  it('the same Content-Length twice → 400', async () => {
    const o = await raw(
      head(['POST /aivault/proxy HTTP/1.1', 'Host: x', 'Content-Length: 2', 'Content-Length: 2']) + '{}',
    );
    expect(o.statuses).toEqual([400]);
    expect(o.closed).toBe(true);
  });

  it('Transfer-Encoding other than exactly chunked → 501 (gzip, chunked; two TE headers)', async () => {
    const chunked = `2\r\n{}\r\n0\r\n\r\n${SMUGGLED}`;
    for (const te of [
      ['Transfer-Encoding: gzip, chunked'],
      ['Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'],
    ]) {
      const o = await raw(head(['POST /aivault/proxy HTTP/1.1', 'Host: x', ...te]) + chunked);
      expectRefused(o, 501);
    }
  });

  it('too many header lines → 431 at once, not a hang', async () => {
    const many = Array.from({ length: 45 }, (_, i) => `X-Pad-${i}: v`);
    const o = await raw(head(['GET /aivault/health HTTP/1.1', 'Host: x', ...many]));
    expect(o.statuses).toEqual([431]);
    expect(o.closed).toBe(true);
    expect(o.ms).toBeLessThan(4000);
  });

  it('too large a header block → 431 at once, not a hang', async () => {
    const o = await raw(head(['GET /aivault/health HTTP/1.1', 'Host: x', `X-Big: ${'a'.repeat(20_000)}`]));
    expect(o.statuses).toEqual([431]);
    expect(o.closed).toBe(true);
  });

  it('pipelined requests are answered in order, or the connection is closed: never a hang', async () => {
    const health = await raw(SMUGGLED + SMUGGLED + SMUGGLED, 2000);
    expect(health.statuses).toEqual([200, 200, 200]);
    const proxy = head(['POST /aivault/proxy HTTP/1.1', 'Host: x', 'Content-Length: 2']) + '{}';
    const o = await raw(proxy + proxy + SMUGGLED, 4000);
    // Either every request got its answer in order, or the daemon closed the connection.
    if (!o.closed) expect(o.statuses).toEqual([401, 401, 200]);
    else expect(o.statuses).toEqual([401, 401, 200].slice(0, o.statuses.length));
  });
});

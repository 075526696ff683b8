/**
 * Server-Timing formatting (src/core/threads/server-timing.ts) and the opt-in `timing` fields of the socket
 * protocol (src/core/protocol/frames.ts): strict validation, and a frame without the field stays as it was.
 */
import { describe, expect, it } from 'vitest';
import { formatServerTiming, isTimings, timingsOf } from '../../../src/core/threads/server-timing.js';
import { decodeFrame, encodeFrame } from '../../../src/core/protocol/frames.js';

describe('Server-Timing', () => {
  it('formats the reached stages in order, total last', () => {
    expect(formatServerTiming({ policy: 0.412, secret: 0.05, upstream: 12.3, total: 13.1 })).toBe(
      'policy;dur=0.412, secret;dur=0.05, upstream;dur=12.3, total;dur=13.1',
    );
    // A call refused by policy never reached the secret or upstream stages.
    expect(formatServerTiming({ policy: 1, total: 1.5 })).toBe('policy;dur=1, total;dur=1.5');
  });

  it('snapshots a call timing relative to its start, in rounded milliseconds', () => {
    const t = timingsOf({ start: 100, policyMs: 1.23456, secretMs: 0.5, upstreamMs: 10 }, 120.0004);
    expect(t).toEqual({ policy: 1.235, secret: 0.5, upstream: 10, total: 20 });
    expect(timingsOf({ start: 5 }, 6)).toEqual({ total: 1 });
  });

  it('accepts only stage → non-negative milliseconds', () => {
    expect(isTimings({ total: 1 })).toBe(true);
    expect(isTimings({ total: 1, policy: 0, secret: 2, upstream: 3 })).toBe(true);
    expect(isTimings({})).toBe(false);
    expect(isTimings({ total: -1 })).toBe(false);
    expect(isTimings({ total: 1, token: 2 })).toBe(false);
    expect(isTimings({ total: '1' })).toBe(false);
    expect(isTimings([1])).toBe(false);
  });
});

describe('timing on socket frames', () => {
  it('round-trips on head, end and response frames; a frame without it has no field', () => {
    const timing = { policy: 1, secret: 2, upstream: 3, total: 7 };
    for (const frame of [
      { type: 'head', id: 1, status: 200, headers: [], timing },
      { type: 'end', id: 1, timing },
      { type: 'response', id: 1, status: 200, headers: [], body: new Uint8Array([1]), timing },
    ] as const) {
      const res = decodeFrame(encodeFrame(frame));
      expect(res.ok && res.value).toMatchObject({ timing });
    }
    const plain = decodeFrame(encodeFrame({ type: 'end', id: 1 }));
    expect(plain.ok && 'timing' in plain.value).toBe(false);
  });

  it('refuses a malformed timing, and an invoke frame may only ask with a boolean', () => {
    const bad = decodeFrame(encodeFrame({ type: 'end', id: 1, timing: { total: 'x' } } as never));
    expect(!bad.ok && bad.error.code).toBe('invalid_request');
    const envelope = { capability: 'a/b', request: { method: 'GET', path: '/' } };
    const asks = decodeFrame(
      encodeFrame({ type: 'invoke', id: 1, envelope, context: {}, stream: false, timing: true }),
    );
    expect(asks.ok && asks.value).toMatchObject({ type: 'invoke', timing: true });
    const wrong = decodeFrame(
      encodeFrame({ type: 'invoke', id: 1, envelope, context: {}, stream: false, timing: 'yes' } as never),
    );
    expect(!wrong.ok && wrong.error.message).toMatch(/timing/);
  });
});

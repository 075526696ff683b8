import { describe, expect, it } from 'vitest';
import { Packr } from 'msgpackr';
import {
  decodeClientFrame,
  decodeDaemonFrame,
  decodeFrame,
  encodeChunkFrameParts,
  encodeFrame,
  peekFrameId,
  PROTOCOL_VERSION,
  type FrameInput,
} from '../../../src/core/protocol/frames.js';

const raw = new Packr({ useRecords: false });
const envelope = { capability: 'openai/models', request: { method: 'GET', path: '/v1/models' } };

describe('frames', () => {
  it('a chunk frame in parts is byte for byte the msgpackr frame (every id and length width)', () => {
    for (const id of [1, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32, 2 ** 40]) {
      for (const n of [0, 1, 255, 256, 65_535, 65_536, 70_000]) {
        const data = Uint8Array.from({ length: n }, (_, i) => (i * 7) & 0xff);
        const parts = encodeChunkFrameParts(id, data);
        expect(Buffer.concat(parts).equals(Buffer.from(encodeFrame({ type: 'chunk', id, data })))).toBe(true);
        // The body is never copied: the second part is the caller's bytes (below 2^32 ids).
        if (id <= 0xffffffff) expect(parts[1]).toBe(data);
        const back = decodeDaemonFrame(Buffer.concat(parts));
        expect(back).toMatchObject({ ok: true, value: { type: 'chunk', id } });
      }
    }
  });

  const roundTrip: FrameInput[] = [
    {
      type: 'invoke',
      id: 1,
      envelope,
      context: { workspaceId: 'w', groupId: 'g' },
      stream: true,
      timeoutMs: 5000,
    },
    { type: 'invoke', id: 2, envelope, context: {}, stream: false },
    { type: 'cancel', id: 3 },
    { type: 'ping' },
    { type: 'ping', id: 9 },
    { type: 'unlock', id: 4, passphrase: 'pw' },
    { type: 'lock', id: 5 },
    { type: 'status', id: 6 },
    {
      type: 'response',
      id: 7,
      status: 200,
      headers: [['content-type', 'application/json']],
      body: new Uint8Array([1, 2, 3]),
    },
    { type: 'response', id: 8, status: 200, headers: [], body: new Uint8Array(0), scrubbed: 2 },
    { type: 'end', id: 8, scrubbed: 1 },
    { type: 'head', id: 7, status: 201, headers: [] },
    { type: 'chunk', id: 7, data: new Uint8Array(70_000).fill(7) },
    { type: 'end', id: 7 },
    { type: 'error', id: 8, error: 'policy_violation', message: 'nope' },
    { type: 'error', error: 'invalid_request', message: 'bad frame', details: { field: 'x' } },
    { type: 'pong' },
    { type: 'result', id: 10, data: { locked: false, provider: 'file' } },
  ];
  it.each(roundTrip.map((f) => [f.type, f] as const))('%s round-trips', (_type, frame) => {
    const res = decodeFrame(encodeFrame(frame));
    expect(res.ok).toBe(true);
    if (!res.ok) return;
    const got = res.value as unknown as Record<string, unknown>;
    expect(got.v).toBe(PROTOCOL_VERSION);
    for (const [k, v] of Object.entries(frame)) {
      if (v instanceof Uint8Array)
        expect(Buffer.from(got[k] as Uint8Array).equals(Buffer.from(v))).toBe(true);
      else expect(got[k]).toEqual(v);
    }
  });

  const malformed: [string, Uint8Array, string][] = [
    ['empty', new Uint8Array(0), 'empty frame'],
    ['not msgpack', new Uint8Array([0x82, 0xa1]), 'not valid msgpack'],
    ['not a map', raw.pack([1, 2]), 'must be a msgpack map'],
    ['no version', raw.pack({ type: 'ping' }), 'no protocol version'],
    ['unknown version', raw.pack({ v: 2, type: 'ping' }), 'unsupported protocol version 2'],
    ['unknown type', raw.pack({ v: 1, type: 'explode', id: 1 }), 'unknown frame type'],
    ['unknown field', raw.pack({ v: 1, type: 'cancel', id: 1, extra: true }), 'unknown field "extra"'],
    ['bad id', raw.pack({ v: 1, type: 'cancel', id: -1 }), '"id" must be a positive integer'],
    ['string id', raw.pack({ v: 1, type: 'cancel', id: '1' }), '"id" must be a positive integer'],
    ['invoke without stream', raw.pack({ v: 1, type: 'invoke', id: 1, envelope, context: {} }), '"stream"'],
    [
      'invoke envelope not map',
      raw.pack({ v: 1, type: 'invoke', id: 1, envelope: 'x', context: {}, stream: false }),
      '"envelope"',
    ],
    [
      'invoke context extra',
      raw.pack({ v: 1, type: 'invoke', id: 1, envelope, context: { token: {} }, stream: false }),
      'unknown field "token"',
    ],
    [
      'invoke bad timeout',
      raw.pack({ v: 1, type: 'invoke', id: 1, envelope, context: {}, stream: false, timeoutMs: 0 }),
      'timeoutMs',
    ],
    [
      'response bad status',
      raw.pack({ v: 1, type: 'response', id: 1, status: 42, headers: [], body: new Uint8Array() }),
      'status',
    ],
    [
      'response bad headers',
      raw.pack({ v: 1, type: 'response', id: 1, status: 200, headers: [['a']], body: new Uint8Array() }),
      'headers',
    ],
    ['chunk string data', raw.pack({ v: 1, type: 'chunk', id: 1, data: 'abc' }), 'binary'],
    [
      'error unknown code',
      raw.pack({ v: 1, type: 'error', error: 'boom', message: 'x' }),
      'unknown error code',
    ],
  ];
  it.each(malformed)('rejects %s as invalid_request', (_name, bytes, message) => {
    const res = decodeFrame(bytes);
    expect(res.ok).toBe(false);
    if (res.ok) return;
    expect(res.error.code).toBe('invalid_request');
    expect(res.error.message).toContain(message);
  });

  it.each([-1, 1.5, '2'])('rejects a scrubbed count of %j', (scrubbed) => {
    const bytes = raw.pack({ v: PROTOCOL_VERSION, type: 'end', id: 1, scrubbed });
    expect(decodeFrame(bytes)).toMatchObject({ ok: false });
  });

  it('separates client and daemon frames', () => {
    expect(decodeClientFrame(encodeFrame({ type: 'end', id: 1 })).ok).toBe(false);
    expect(decodeDaemonFrame(encodeFrame({ type: 'cancel', id: 1 })).ok).toBe(false);
    expect(decodeClientFrame(encodeFrame({ type: 'cancel', id: 1 })).ok).toBe(true);
  });

  it('peeks the id of an invalid frame so the error can be routed', () => {
    expect(peekFrameId(raw.pack({ v: 1, type: 'invoke', id: 42 }))).toBe(42);
    expect(peekFrameId(new Uint8Array([0xc1]))).toBeUndefined();
  });

  it('does not let __proto__ keys pollute prototypes', () => {
    const bytes = raw.pack({
      v: 1,
      type: 'invoke',
      id: 1,
      envelope: JSON.parse('{"__proto__":{"polluted":1}}'),
      context: {},
      stream: false,
    });
    decodeFrame(bytes);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { MAX_MSGPACK_DEPTH, msgpackBoundsProblem } from '../../../src/core/protocol/msgpack-bounds.js';
import { decodeClientFrame, encodeFrame, peekFrameId } from '../../../src/core/protocol/frames.js';

const packr = new Packr({ useRecords: false, moreTypes: false });
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

function depth(v: unknown): number {
  if (Array.isArray(v)) return 1 + Math.max(0, ...v.map(depth));
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array))
    return 1 + Math.max(0, ...Object.values(v).map(depth));
  return 0;
}

describe('msgpackBoundsProblem', () => {
  it('accepts every msgpack encoding of ordinary values (no false refusals)', () => {
    fc.assert(
      fc.property(
        fc.anything({ withTypedArray: false, withBoxedValues: false, withMap: false, withSet: false }),
        (v) => {
          let bytes: Uint8Array;
          try {
            bytes = packr.pack(v);
          } catch {
            return;
          }
          if (depth(v) >= MAX_MSGPACK_DEPTH) return;
          expect(msgpackBoundsProblem(bytes)).toBeUndefined();
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('accepts every frame type the protocol defines', () => {
    const frames = [
      encodeFrame({
        type: 'invoke',
        id: 1,
        envelope: { capability: 'a/b', request: { method: 'GET', path: '/v1' } },
        context: {},
        stream: false,
      }),
      encodeFrame({ type: 'chunk', id: 1, data: new Uint8Array(70_000) }),
      encodeFrame({ type: 'head', id: 1, status: 200, headers: [['a', 'b']] }),
    ];
    for (const f of frames) expect(msgpackBoundsProblem(f)).toBeUndefined();
  });

  it('refuses every strict prefix of a value (truncation)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat(), (v, cut) => {
        const bytes = packr.pack(v);
        if (bytes.length < 2) return;
        const prefix = bytes.subarray(0, cut % bytes.length);
        expect(msgpackBoundsProblem(prefix)).toBeDefined();
      }),
      { numRuns: 2000 },
    );
  });

  // Found by the Jazzer.js frame target: 11 bytes declaring nested 2^25-element arrays made msgpackr
  // allocate ~400 MB and take ~1 s per frame.
  const bombs = [
    'dd01ddde00ddd4dddddd00',
    'dd01dddeddddd00d4dddddd'.slice(0, 22),
    'df7fffffff',
    'dc ffff c0',
  ];
  it.each(bombs)('refuses a container that declares more elements than the frame holds: %s', (h) => {
    const bytes = hex(h);
    expect(msgpackBoundsProblem(bytes)).toMatch(/declares more elements|truncated/);
    const r = decodeClientFrame(bytes);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('invalid_request');
    expect(peekFrameId(bytes)).toBeUndefined();
  });

  it('refuses strings, binaries and extensions longer than the frame', () => {
    expect(msgpackBoundsProblem(hex('db 7fffffff 41'))).toMatch(/longer than the frame/);
    expect(msgpackBoundsProblem(hex('c6 00100000 00'))).toMatch(/longer than the frame/);
    expect(msgpackBoundsProblem(hex('c9 00100000 01 00'))).toMatch(/longer than the frame/);
    expect(msgpackBoundsProblem(hex('da 00'))).toMatch(/length field is truncated/);
  });

  it('caps nesting depth and refuses the never-used type byte', () => {
    const deep = new Uint8Array(MAX_MSGPACK_DEPTH + 2).fill(0x91);
    deep[deep.length - 1] = 0xc0;
    expect(msgpackBoundsProblem(deep)).toMatch(/nesting is deeper/);
    expect(msgpackBoundsProblem(hex('c1'))).toMatch(/not a valid type/);
  });
});

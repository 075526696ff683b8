/**
 * A linear pre-scan of untrusted msgpack bytes, run before msgpackr sees them.
 *
 * Why hand-written: msgpackr sizes arrays and maps from their DECLARED element counts, so an 11-byte frame
 * declaring nested 2^25-element arrays made the daemon allocate ~400 MB and spend a second per frame (found
 * by the Jazzer.js frame target). No msgpack library we could use offers a "count must fit the input"
 * check, and this runs on every frame, so it is a single allocation-free pass: every container's count must
 * fit in the bytes left (each element takes at least one byte), every string/bin/ext length must fit, and
 * nesting is capped (msgpackr decodes recursively).
 */

/** Deeper than any frame we define (invoke → envelope → request → multipart → part ≈ 6). */
export const MAX_MSGPACK_DEPTH = 32;

/** Why the bytes are refused, or undefined when one whole value fits. Never throws. */
export function msgpackBoundsProblem(bytes: Uint8Array, maxDepth = MAX_MSGPACK_DEPTH): string | undefined {
  const end = bytes.length;
  let pos = 0;
  // Items still to read at each open nesting level; the outermost "container" holds the one top value.
  const pending: number[] = [1];

  const uint = (width: 1 | 2 | 4): number | undefined => {
    if (end - pos < width) return undefined;
    let n = 0;
    for (let i = 0; i < width; i++) n = n * 256 + bytes[pos + i]!;
    pos += width;
    return n;
  };

  while (pending.length > 0) {
    const top = pending.length - 1;
    if (pending[top] === 0) {
      pending.pop();
      continue;
    }
    pending[top]!--;
    if (pos >= end) return 'msgpack value is truncated';
    const t = bytes[pos++]!;

    let items = 0; // elements of a container that starts here
    let skip = 0; // payload bytes of a scalar that starts here
    if (t <= 0x7f || t >= 0xe0) {
      // positive / negative fixint
    } else if (t <= 0x8f) {
      items = (t & 0x0f) * 2;
    } else if (t <= 0x9f) {
      items = t & 0x0f;
    } else if (t <= 0xbf) {
      skip = t & 0x1f;
    } else {
      let n: number | undefined;
      switch (t) {
        case 0xc0: // nil
        case 0xc2: // false
        case 0xc3: // true
          break;
        case 0xc4: // bin 8/16/32, str 8/16/32: length then payload
        case 0xd9:
          n = uint(1);
          skip = n ?? -1;
          break;
        case 0xc5:
        case 0xda:
          n = uint(2);
          skip = n ?? -1;
          break;
        case 0xc6:
        case 0xdb:
          n = uint(4);
          skip = n ?? -1;
          break;
        case 0xc7: // ext 8/16/32: length, type byte, payload
          n = uint(1);
          skip = n === undefined ? -1 : n + 1;
          break;
        case 0xc8:
          n = uint(2);
          skip = n === undefined ? -1 : n + 1;
          break;
        case 0xc9:
          n = uint(4);
          skip = n === undefined ? -1 : n + 1;
          break;
        case 0xcc: // uint8, int8
        case 0xd0:
          skip = 1;
          break;
        case 0xcd:
        case 0xd1:
          skip = 2;
          break;
        case 0xca: // float32, uint32, int32
        case 0xce:
        case 0xd2:
          skip = 4;
          break;
        case 0xcb: // float64, uint64, int64
        case 0xcf:
        case 0xd3:
          skip = 8;
          break;
        case 0xd4: // fixext 1/2/4/8/16 (+ type byte)
          skip = 2;
          break;
        case 0xd5:
          skip = 3;
          break;
        case 0xd6:
          skip = 5;
          break;
        case 0xd7:
          skip = 9;
          break;
        case 0xd8:
          skip = 17;
          break;
        case 0xdc: // array 16/32
          n = uint(2);
          items = n ?? -1;
          break;
        case 0xdd:
          n = uint(4);
          items = n ?? -1;
          break;
        case 0xde: // map 16/32
          n = uint(2);
          items = n === undefined ? -1 : n * 2;
          break;
        case 0xdf:
          n = uint(4);
          items = n === undefined ? -1 : n * 2;
          break;
        default: // 0xc1: never used
          return `msgpack byte 0x${t.toString(16)} is not a valid type`;
      }
    }
    if (skip < 0 || items < 0) return 'msgpack length field is truncated';
    if (skip > end - pos) return 'msgpack string/binary is longer than the frame';
    pos += skip;
    if (items > 0) {
      if (items > end - pos) return 'msgpack array/map declares more elements than the frame holds';
      if (pending.length > maxDepth) return `msgpack nesting is deeper than ${maxDepth}`;
      pending.push(items);
    }
  }
  return undefined;
}

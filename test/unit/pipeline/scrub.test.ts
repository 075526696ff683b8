import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  buildScrubPatterns,
  createScrubber,
  MIN_SCRUB_LENGTH,
  newScrubStats,
  ScrubMatcher,
  type ScrubPattern,
} from '../../../src/request-worker/pipeline/scrub.js';

const enc = (s: string): Uint8Array => Buffer.from(s, 'utf8');
const txt = (b: Uint8Array): string => Buffer.from(b).toString('utf8');

/** Reference: at each offset take the longest pattern that starts there (naive, obviously right). */
function naiveScrub(body: Uint8Array, patterns: readonly ScrubPattern[], m: ScrubMatcher): Uint8Array {
  const out: number[] = [];
  const buf = Buffer.from(body);
  let p = 0;
  while (p < buf.length) {
    let best = -1;
    let bestLen = 0;
    patterns.forEach((pat, i) => {
      const len = pat.bytes.byteLength;
      if (len > bestLen && p + len <= buf.length && buf.subarray(p, p + len).equals(pat.bytes)) {
        best = i;
        bestLen = len;
      }
    });
    if (best >= 0) {
      out.push(...m.replacement(best));
      p += bestLen;
    } else out.push(buf[p++] as number);
  }
  return Uint8Array.from(out);
}

function streamIn(m: ScrubMatcher, body: Uint8Array, cuts: readonly number[]): Uint8Array {
  const s = m.stream();
  const parts: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...new Set(cuts.map((x) => x % (body.byteLength + 1)))].sort((a, b) => a - b)) {
    parts.push(s.push(body.subarray(prev, c)));
    prev = c;
  }
  parts.push(s.push(body.subarray(prev)), s.end());
  return Buffer.concat(parts);
}

describe('scrub patterns', () => {
  const key = 'sk-test+/=Key_1234567890"é\\abc';
  const m = createScrubber([{ name: 'OPENAI_API_KEY', value: key }]);
  const b = Buffer.from(key, 'utf8');
  const forms: [string, string][] = [
    ['raw', key],
    ['json', JSON.stringify(key).slice(1, -1)],
    ['json (\\/ and \\u)', JSON.stringify(key).slice(1, -1).replace(/\//g, '\\/').replace('é', '\\u00e9')],
    ['percent', encodeURIComponent(key)],
    ['percent lower', encodeURIComponent(key).replace(/%[0-9A-F]{2}/g, (x) => x.toLowerCase())],
    ['hex', b.toString('hex')],
    ['HEX', b.toString('hex').toUpperCase()],
    ['base64', b.toString('base64')],
    ['base64 unpadded', b.toString('base64').replace(/=+$/, '')],
    ['base64url', b.toString('base64url')],
    ['base64url padded', b.toString('base64').replace(/\+/g, '-').replace(/\//g, '_')],
  ];
  it.each(forms)('%s form is replaced whole', (_kind, form) => {
    const out = txt(m.scrub(enc(`before ${form} after`)));
    expect(out).toBe('before [redacted:OPENAI_API_KEY] after');
  });

  it.each([0, 1, 2, 5])('finds the key inside a longer base64 text (prefix of %i bytes)', (n) => {
    const body = Buffer.concat([Buffer.alloc(n, 0x41), b, Buffer.from('{"x":1}')]);
    for (const form of [body.toString('base64'), body.toString('base64url')]) {
      const out = txt(m.scrub(enc(form)));
      expect(out).toContain('[redacted:OPENAI_API_KEY]');
    }
  });

  it('counts replacements and kinds, never values', () => {
    const stats = newScrubStats();
    m.scrub(enc(`${key} and ${b.toString('hex')}`), stats);
    expect(stats.count).toBe(2);
    expect([...stats.kinds].sort()).toEqual(['hex', 'raw']);
    expect(JSON.stringify({ ...stats, kinds: [...stats.kinds] })).not.toContain('sk-test');
  });

  it('basic: the wire token base64(user:pass) is replaced', () => {
    const token = Buffer.from('alice:correct-horse').toString('base64');
    const sm = createScrubber([{ name: 'SVC_LOGIN', value: token, kind: 'basic' }]);
    const stats = newScrubStats();
    expect(txt(sm.scrub(enc(`Authorization: Basic ${token}`), stats))).toBe(
      'Authorization: Basic [redacted:SVC_LOGIN]',
    );
    expect([...stats.kinds]).toEqual(['basic']);
  });

  it(`ignores values shorter than ${MIN_SCRUB_LENGTH} characters`, () => {
    expect(buildScrubPatterns([{ name: 'A', value: 'short' }])).toEqual([]);
    const sm = createScrubber([{ name: 'A', value: 'true' }]);
    expect(txt(sm.scrub(enc('{"ok":true}')))).toBe('{"ok":true}');
  });

  it('every pattern is at least the minimum length', () => {
    for (const p of buildScrubPatterns([{ name: 'A', value: '12345678' }])) {
      expect(p.bytes.byteLength).toBeGreaterThanOrEqual(MIN_SCRUB_LENGTH);
    }
  });

  it('scrubText returns the same string when nothing matched', () => {
    const s = 'nothing to see here';
    expect(m.scrubText(s)).toBe(s);
    expect(m.scrubText(`x ${key}`)).toBe('x [redacted:OPENAI_API_KEY]');
  });
});

describe('streaming', () => {
  const key = 'abcdefgh12345678';
  const m = createScrubber([{ name: 'K', value: key }]);

  it('holds back only a possible partial match', () => {
    const s = m.stream();
    expect(txt(s.push(enc('hello world ')))).toBe('hello world ');
    expect(txt(s.push(enc('data: abcdefgh')))).toBe('data: ');
    expect(txt(s.push(enc('12345678 tail')))).toBe('[redacted:K] tail');
    expect(txt(s.end())).toBe('');
  });

  it('releases a held prefix that turned out not to be a match', () => {
    const s = m.stream();
    expect(txt(s.push(enc('x abcdef')))).toBe('x ');
    expect(txt(s.push(enc('Z')))).toBe('abcdefZ');
    expect(txt(s.push(enc('abc')))).toBe('');
    expect(txt(s.end())).toBe('abc');
  });

  it('an empty matcher passes chunks through untouched', () => {
    const e = createScrubber([]);
    const chunk = enc('anything');
    expect(e.stream().push(chunk)).toBe(chunk);
  });
});

describe('property: streamed scrub == scrub of the whole body == naive reference', () => {
  const alphabet = fc.constantFrom(...'ab01+/=%"\\-_xyzAB'.split(''));
  const secret = fc.string({ unit: alphabet, minLength: MIN_SCRUB_LENGTH, maxLength: 24 });
  const noise = fc.uint8Array({ maxLength: 64 });

  it('random secrets, encodings, surroundings and chunkings', () => {
    fc.assert(
      fc.property(
        fc.array(secret, { minLength: 1, maxLength: 3 }),
        fc.array(fc.tuple(noise, fc.nat(), fc.nat({ max: 30 })), { maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (secrets, pieces, cuts) => {
          const sm = createScrubber(secrets.map((value, i) => ({ name: `S${i}`, value })));
          const patterns = sm.patterns;
          const body = Buffer.concat(
            pieces.flatMap(([n, si, pi]) => {
              const p = patterns[(si * 31 + pi) % patterns.length];
              return p ? [n, p.bytes] : [n];
            }),
          );
          const whole = sm.scrub(body);
          expect(Buffer.from(whole).equals(Buffer.from(naiveScrub(body, patterns, sm)))).toBe(true);
          expect(Buffer.from(streamIn(sm, body, cuts)).equals(Buffer.from(whole))).toBe(true);
          for (const s of secrets) expect(Buffer.from(whole).includes(s)).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('long chunks around secrets (the native pre-check path) match the reference for any cut', () => {
    // Chunks longer than the longest pattern with no whole pattern in them skip the automaton but for
    // their tail (ScrubStream.push): a secret split across chunks, or a near-miss prefix at a chunk's end,
    // must come out exactly as the naive reference says.
    const filler = fc.string({ unit: fc.constantFrom(...'ab01+/=%xyz '.split('')), maxLength: 300 });
    fc.assert(
      fc.property(
        fc.array(secret, { minLength: 1, maxLength: 2 }),
        fc.array(fc.tuple(filler, fc.nat(), fc.nat({ max: 30 }), fc.nat({ max: 40 })), { maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        (secrets, pieces, cuts) => {
          const sm = createScrubber(secrets.map((value, i) => ({ name: `S${i}`, value })));
          const patterns = sm.patterns;
          const body = Buffer.concat(
            pieces.flatMap(([f, si, pi, keep]) => {
              const p = patterns[(si * 31 + pi) % patterns.length];
              // Either the whole pattern or only its first `keep` bytes (a prefix that never completes).
              const bytes = p ? (keep % 2 === 0 ? p.bytes : p.bytes.subarray(0, keep)) : enc('');
              return [enc(f), bytes];
            }),
          );
          const ref = Buffer.from(naiveScrub(body, patterns, sm));
          expect(Buffer.from(sm.scrub(body)).equals(ref)).toBe(true);
          expect(Buffer.from(streamIn(sm, body, cuts)).equals(ref)).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('overlapping arbitrary patterns (automaton edge cases), byte-at-a-time', () => {
    const small = fc.string({ unit: fc.constantFrom('a', 'b', 'c'), minLength: 1, maxLength: 6 });
    fc.assert(
      fc.property(
        fc.array(small, { minLength: 1, maxLength: 6 }),
        fc.string({ unit: fc.constantFrom('a', 'b', 'c', 'd'), maxLength: 80 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (pats, text, cuts) => {
          const patterns: ScrubPattern[] = [...new Set(pats)].map((p, i) => ({
            bytes: enc(p),
            name: `P${i}`,
            kind: 'raw',
          }));
          const sm = new ScrubMatcher(patterns);
          const body = enc(text);
          const ref = naiveScrub(body, patterns, sm);
          expect(txt(sm.scrub(body))).toBe(txt(ref));
          expect(txt(streamIn(sm, body, cuts))).toBe(txt(ref));
          const one = sm.stream();
          const bytes = [...body].map((x) => one.push(Uint8Array.of(x)));
          expect(txt(Buffer.concat([...bytes, one.end()]))).toBe(txt(ref));
        },
      ),
      { numRuns: 500 },
    );
  });
});

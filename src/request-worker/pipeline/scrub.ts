/**
 * Reflected-secret scrubbing: replace every occurrence of a secret value injected into THIS call (and its
 * common encodings) in a response with `[redacted:<SECRET_NAME>]`, streaming-safe. Pure: no I/O, no
 * logging; the values live only in the compiled matcher of one call and are never written anywhere.
 *
 * Which values: every secret value of the call's credential (JSON-object secrets contribute their string
 * fields, e.g. an OAuth2 access token, refresh token and client secret), plus the basic-auth token
 * base64(user:pass) exactly as it went on the wire. PEM blocks (mTLS cert/key) are left out: they never go
 * on the wire as bytes an upstream could reflect (the key signs the TLS handshake; the cert is public).
 * Values shorter than MIN_SCRUB_LENGTH are not scrubbed: an upstream reply is full of short strings
 * ("true", ids, words), so replacing a short value would corrupt ordinary content, and a value that short
 * is guessable anyway; the vault's real keys are far longer.
 *
 * Matcher: hand-written Aho–Corasick over BYTES, on purpose. The npm automata (modern-ahocorasick,
 * @monyone/aho-corasick, ahocorasick) match UTF-16 strings, so a chunk boundary inside a multi-byte
 * character or a binary body would need decoding first, and none of them can carry state across chunks
 * or tell how much of the tail may still become a match. This one does both: a chunk is scanned once,
 * matches are resolved leftmost-longest (the same answer for any chunking), and only the bytes that could
 * still be the start of a match are held back, so a stream without secrets is never delayed.
 */

/** Shortest secret value that is scrubbed (see the header for why). */
export const MIN_SCRUB_LENGTH = 8;

export type ScrubEncoding = 'raw' | 'base64' | 'base64url' | 'hex' | 'percent' | 'json' | 'basic';

export interface ScrubSecret {
  /** Secret name shown in the replacement (never the value). */
  readonly name: string;
  readonly value: string;
  /** 'basic' for the wire token base64(user:pass); default: the value itself. */
  readonly kind?: 'value' | 'basic';
}

export interface ScrubPattern {
  readonly bytes: Uint8Array;
  readonly name: string;
  readonly kind: ScrubEncoding;
}

/** What a scrubber replaced so far (counts and kinds only; never a value). */
export interface ScrubStats {
  count: number;
  readonly kinds: Set<ScrubEncoding>;
}

const B64_ALPHABET = /[+/]/g;

function toBase64Url(b64: string): string {
  return b64.replace(B64_ALPHABET, (c) => (c === '+' ? '-' : '_'));
}

/**
 * base64 forms of `bytes` as it may appear inside a longer base64 text: for each of the 3 alignments,
 * the characters that depend on the secret bytes alone (a secret embedded in a base64'd JSON body is still
 * found), plus the exact padded and unpadded encodings of the value on its own.
 */
function base64Forms(bytes: Buffer): string[] {
  const forms: string[] = [];
  const full = bytes.toString('base64');
  forms.push(full, full.replace(/=+$/, ''));
  for (const k of [1, 2]) {
    const enc = Buffer.concat([Buffer.alloc(k), bytes])
      .toString('base64')
      .replace(/=+$/, '');
    // Leading chars mixed with the k filler bytes: 2 for k=1, 3 for k=2. Trailing chars mixed with
    // whatever follows in the longer text: 1 or 2 when the length is not a multiple of 3.
    const tail = (bytes.length + k) % 3 === 0 ? 0 : 1;
    forms.push(enc.slice(k === 1 ? 2 : 3, enc.length - tail));
  }
  // Unaligned-at-the-end form for k = 0 (value followed by more bytes): drop the mixed last char.
  if (bytes.length % 3 !== 0) forms.push(full.replace(/=+$/, '').slice(0, -1));
  return forms;
}

function jsonForms(value: string): string[] {
  const std = JSON.stringify(value).slice(1, -1);
  // Escaped slashes (PHP and others) and \u-escaped non-ASCII (Python's json.dumps default).
  const slash = std.replace(/\//g, '\\/');
  const ascii = (t: string): string =>
    t.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return [std, slash, ascii(std), ascii(slash)];
}

function percentForms(value: string): string[] {
  const upper = encodeURIComponent(value);
  const lower = upper.replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase());
  // application/x-www-form-urlencoded writes spaces as '+'.
  return [upper, lower, upper.replace(/%20/g, '+')];
}

/** The set of byte patterns for these secrets, deduplicated (first kind wins), each ≥ MIN_SCRUB_LENGTH. */
export function buildScrubPatterns(secrets: readonly ScrubSecret[]): ScrubPattern[] {
  const byText = new Map<string, ScrubPattern>();
  const add = (text: string, name: string, kind: ScrubEncoding): void => {
    if (text.length < MIN_SCRUB_LENGTH || byText.has(text)) return;
    byText.set(text, { bytes: Buffer.from(text, 'utf8'), name, kind });
  };
  for (const s of secrets) {
    if (s.value.length < MIN_SCRUB_LENGTH) continue;
    if (s.kind === 'basic') {
      add(s.value, s.name, 'basic');
      for (const t of percentForms(s.value)) add(t, s.name, 'basic');
      for (const t of jsonForms(s.value)) add(t, s.name, 'basic');
      continue;
    }
    const bytes = Buffer.from(s.value, 'utf8');
    add(s.value, s.name, 'raw');
    for (const t of jsonForms(s.value)) add(t, s.name, 'json');
    for (const t of percentForms(s.value)) add(t, s.name, 'percent');
    const hex = bytes.toString('hex');
    add(hex, s.name, 'hex');
    add(hex.toUpperCase(), s.name, 'hex');
    for (const t of base64Forms(bytes)) {
      add(t, s.name, 'base64');
      add(toBase64Url(t), s.name, 'base64url');
    }
  }
  return [...byText.values()];
}

/** Replacement text for a secret name (the name is reduced to a safe alphabet so it needs no escaping). */
export function replacementFor(name: string): string {
  return `[redacted:${name.replace(/[^A-Za-z0-9_.-]/g, '_')}]`;
}

/**
 * The compiled automaton. Trie nodes are numbered; node 0 is the root. The root has a dense 256-entry
 * transition table (nearly every byte of an ordinary body stops there); other nodes keep a short edge list
 * (nearly all of them have one child), which keeps compiling cheap enough to do once per call.
 */
export class ScrubMatcher {
  readonly patterns: readonly ScrubPattern[];
  readonly #root = new Int32Array(256);
  readonly #firstEdge: number[] = [-1];
  readonly #edgeByte: number[] = [];
  readonly #edgeTo: number[] = [];
  readonly #nextEdge: number[] = [];
  readonly #fail: number[] = [0];
  readonly #depth: number[] = [0];
  /** Pattern ending exactly at this node, or -1. */
  readonly #out: number[] = [-1];
  /** Nearest node on the failure chain (excluding itself) that ends a pattern, or -1. */
  readonly #dict: number[] = [-1];
  readonly #replacements: Uint8Array[];
  /** The patterns as Buffers, for the native pre-check (see `occursIn`). */
  readonly #needles: Buffer[];
  /** Length of the longest pattern. */
  readonly maxLength: number;

  constructor(patterns: readonly ScrubPattern[]) {
    this.patterns = patterns;
    this.#needles = patterns.map((p) => Buffer.from(p.bytes.buffer, p.bytes.byteOffset, p.bytes.byteLength));
    this.maxLength = patterns.reduce((n, p) => Math.max(n, p.bytes.byteLength), 0);
    this.#root.fill(-1);
    this.#replacements = patterns.map((p) => Buffer.from(replacementFor(p.name), 'utf8'));
    patterns.forEach((p, i) => this.#insert(p.bytes, i));
    this.#link();
  }

  get isEmpty(): boolean {
    return this.patterns.length === 0;
  }

  #child(node: number, b: number): number {
    if (node === 0) return this.#root[b] as number;
    for (let e = this.#firstEdge[node] as number; e >= 0; e = this.#nextEdge[e] as number) {
      if (this.#edgeByte[e] === b) return this.#edgeTo[e] as number;
    }
    return -1;
  }

  #insert(bytes: Uint8Array, index: number): void {
    let node = 0;
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i] as number;
      let next = this.#child(node, b);
      if (next < 0) {
        next = this.#fail.length;
        this.#firstEdge.push(-1);
        this.#fail.push(0);
        this.#depth.push((this.#depth[node] as number) + 1);
        this.#out.push(-1);
        this.#dict.push(-1);
        if (node === 0) this.#root[b] = next;
        else {
          this.#edgeByte.push(b);
          this.#edgeTo.push(next);
          this.#nextEdge.push(this.#firstEdge[node] as number);
          this.#firstEdge[node] = this.#edgeByte.length - 1;
        }
      }
      node = next;
    }
    if (this.#out[node] === -1) this.#out[node] = index;
  }

  /** Breadth-first failure and dictionary links (standard Aho–Corasick construction). */
  #link(): void {
    const queue: number[] = [];
    for (let b = 0; b < 256; b++) {
      const c = this.#root[b] as number;
      if (c > 0) queue.push(c);
    }
    for (let qi = 0; qi < queue.length; qi++) {
      const node = queue[qi] as number;
      for (let e = this.#firstEdge[node] as number; e >= 0; e = this.#nextEdge[e] as number) {
        const b = this.#edgeByte[e] as number;
        const child = this.#edgeTo[e] as number;
        queue.push(child);
        const f = this.#step(this.#fail[node] as number, b);
        this.#fail[child] = f;
        this.#dict[child] = (this.#out[f] as number) >= 0 ? f : (this.#dict[f] as number);
      }
    }
    // Missing root transitions loop back to the root.
    for (let b = 0; b < 256; b++) if ((this.#root[b] as number) < 0) this.#root[b] = 0;
  }

  #step(state: number, b: number): number {
    let s = state;
    for (;;) {
      const next = this.#child(s, b);
      if (next >= 0) return next;
      if (s === 0) return 0;
      s = this.#fail[s] as number;
    }
  }

  /** A fresh streaming scrubber over this automaton. */
  stream(stats: ScrubStats = newScrubStats()): ScrubStream {
    return new ScrubStream(this, stats);
  }

  /** Scrub a whole body at once (same result as streaming it in any chunking). */
  scrub(body: Uint8Array, stats: ScrubStats = newScrubStats()): Uint8Array {
    if (this.isEmpty) return body;
    const s = this.stream(stats);
    const a = s.push(body);
    const b = s.end();
    if (b.byteLength === 0) return a;
    if (a.byteLength === 0) return b;
    return Buffer.concat([a, b]);
  }

  /** Scrub a string (headers, error messages); returns the same string when nothing matched. */
  scrubText(text: string, stats: ScrubStats = newScrubStats()): string {
    if (this.isEmpty || text.length < MIN_SCRUB_LENGTH) return text;
    const before = stats.count;
    const out = this.scrub(Buffer.from(text, 'utf8'), stats);
    return stats.count === before ? text : Buffer.from(out).toString('utf8');
  }

  /**
   * @internal Scan `buf[from..]` from `state`, pushing every match that starts at or after `boundary`.
   * Hot loop: the automaton's arrays are read into locals and the transition is inlined (a method call
   * and private-field reads per byte were most of the cost).
   */
  scan(
    state: number,
    buf: Uint8Array,
    from: number,
    absBase: number,
    boundary: number,
    found: Match[],
  ): number {
    const root = this.#root;
    const first = this.#firstEdge;
    const edgeByte = this.#edgeByte;
    const edgeTo = this.#edgeTo;
    const nextEdge = this.#nextEdge;
    const fail = this.#fail;
    const out = this.#out;
    const dict = this.#dict;
    const depth = this.#depth;
    let s = state;
    for (let i = from; i < buf.length; i++) {
      const b = buf[i] as number;
      if (s === 0) {
        s = root[b] as number; // nearly every byte of an ordinary body stops here
        if (s === 0) continue;
      } else {
        for (;;) {
          let next = -1;
          for (let e = first[s] as number; e >= 0; e = nextEdge[e] as number) {
            if (edgeByte[e] === b) {
              next = edgeTo[e] as number;
              break;
            }
          }
          if (next >= 0) {
            s = next;
            break;
          }
          s = fail[s] as number;
          if (s === 0) {
            s = root[b] as number;
            break;
          }
        }
        if (s === 0) continue;
      }
      let m = (out[s] as number) >= 0 ? s : (dict[s] as number);
      while (m >= 0) {
        const end = absBase + i + 1;
        const start = end - (depth[m] as number);
        if (start >= boundary) found.push({ start, end, pattern: out[m] as number });
        m = dict[m] as number;
      }
    }
    return s;
  }

  /**
   * Whether any pattern occurs in `buf`. Why: `Buffer#indexOf` per pattern is native (V8's adaptive
   * Boyer–Moore–Horspool: linear in the worst case) and ~3.6× faster over a body than the byte-by-byte
   * automaton even with all of a secret's ~8 encodings (micro-benchmark, 64 KiB chunks: 1,340 vs 370 MB/s);
   * nearly every chunk of a response holds no secret, and then the automaton needs only the chunk's tail
   * (ScrubStream.push). Large streamed bodies spent ~30% of a request worker in `scan` (bench/PROFILE.md).
   */
  occursIn(buf: Uint8Array): boolean {
    const hay = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    for (const needle of this.#needles) if (hay.indexOf(needle) >= 0) return true;
    return false;
  }

  depthOf(state: number): number {
    return this.#depth[state] as number;
  }

  replacement(pattern: number): Uint8Array {
    return this.#replacements[pattern] as Uint8Array;
  }
}

interface Match {
  readonly start: number;
  readonly end: number;
  readonly pattern: number;
}

export function newScrubStats(): ScrubStats {
  return { count: 0, kinds: new Set() };
}

const EMPTY = new Uint8Array(0);

/**
 * One response stream. `push` returns the bytes that can be released now (possibly empty); `end` returns
 * the held-back rest. Held back: only the tail that is a prefix of some pattern, plus any match that a
 * longer, earlier-starting one could still override.
 */
export class ScrubStream {
  readonly #m: ScrubMatcher;
  readonly stats: ScrubStats;
  #state = 0;
  /** Absolute offset of the first byte not yet released (everything before it is final). */
  #boundary = 0;
  /** Bytes from #boundary to the scan position, already scanned. */
  #held: Uint8Array = EMPTY;
  #found: Match[] = [];

  constructor(matcher: ScrubMatcher, stats: ScrubStats) {
    this.#m = matcher;
    this.stats = stats;
  }

  push(chunk: Uint8Array): Uint8Array {
    if (this.#m.isEmpty || chunk.byteLength === 0) return this.#m.isEmpty ? chunk : EMPTY;
    const heldLen = this.#held.byteLength;
    const buf = heldLen === 0 ? chunk : Buffer.concat([this.#held, chunk]);
    const m = this.#m;
    if (buf.byteLength > m.maxLength && !m.occursIn(buf)) {
      // No pattern in held + chunk: the automaton would find no match here (a match it still holds
      // back lies inside the held bytes and nothing longer can complete in `buf`). Its end state is the
      // longest suffix of `buf` that is a pattern prefix, shorter than the longest pattern (no pattern
      // ends in it), and `buf` starts at or before that suffix (the held tail always covers the state),
      // so scanning the last maxLength − 1 bytes from the root gives the same state.
      const from = buf.byteLength - (m.maxLength - 1);
      this.#state = m.scan(0, buf, from, this.#boundary, this.#boundary, this.#found);
    } else {
      this.#state = m.scan(this.#state, buf, heldLen, this.#boundary, this.#boundary, this.#found);
    }
    const pos = this.#boundary + buf.byteLength;
    return this.#release(buf, pos - this.#m.depthOf(this.#state));
  }

  end(): Uint8Array {
    if (this.#m.isEmpty) return EMPTY;
    const buf = this.#held;
    const out = this.#release(buf, this.#boundary + buf.byteLength);
    this.#state = 0;
    this.#found = [];
    return out;
  }

  /**
   * Commit matches that no future byte can change (leftmost-longest), release everything before
   * `minFutureStart` (the earliest offset a match still in progress could start at), keep the rest.
   */
  #release(buf: Uint8Array, minFutureStart: number): Uint8Array {
    const base = this.#boundary;
    let found = this.#found;
    if (found.length === 0 && minFutureStart === base + buf.byteLength) {
      this.#boundary = minFutureStart;
      this.#held = EMPTY;
      return buf;
    }
    const parts: Uint8Array[] = [];
    let cursor = base; // absolute offset of the next byte to release
    for (;;) {
      let best: Match | undefined;
      for (const f of found) {
        if (f.start < cursor) continue;
        if (!best || f.start < best.start || (f.start === best.start && f.end > best.end)) best = f;
      }
      if (!best || best.start >= minFutureStart) break;
      if (best.start > cursor) parts.push(buf.subarray(cursor - base, best.start - base));
      parts.push(this.#m.replacement(best.pattern));
      this.stats.count++;
      this.stats.kinds.add(this.#m.patterns[best.pattern]?.kind ?? 'raw');
      cursor = best.end;
      found = found.filter((f) => f.start >= cursor);
    }
    // Release raw bytes up to the earliest offset a pending or future match may start at.
    let stop = Math.min(minFutureStart, base + buf.byteLength);
    for (const f of found) if (f.start >= cursor && f.start < stop) stop = f.start;
    if (stop > cursor) {
      parts.push(buf.subarray(cursor - base, stop - base));
      cursor = stop;
    }
    this.#found = found.filter((f) => f.start >= cursor);
    // Copy the held tail: the caller may hand `buf`'s memory to another thread.
    this.#held = cursor - base < buf.byteLength ? buf.slice(cursor - base) : EMPTY;
    this.#boundary = cursor;
    if (parts.length === 0) return EMPTY;
    if (parts.length === 1) return parts[0] as Uint8Array;
    return Buffer.concat(parts);
  }
}

/** Compile a matcher for these secrets (empty matcher when none is long enough). */
export function createScrubber(secrets: readonly ScrubSecret[]): ScrubMatcher {
  return new ScrubMatcher(buildScrubPatterns(secrets));
}

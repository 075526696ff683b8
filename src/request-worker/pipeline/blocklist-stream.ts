/**
 * Streaming response blocklist: redact the values of named JSON fields in a streamed response without
 * buffering the body. Three shapes, chosen by the upstream's content-type:
 * - `text/event-stream`: every `data:` line is one JSON document (redacted and re-serialized like the
 *   buffered path); other SSE lines pass through; the `[DONE]` terminator (OpenAI convention) passes.
 * - `application/x-ndjson` / `application/jsonl`: every non-empty line is one JSON document.
 * - anything else: one JSON document, rewritten byte by byte as it streams (below).
 * Anything that is not JSON where JSON is required throws policy_violation (fail closed): the caller then
 * gets an error, or a truncated stream if part of it already went out (all of it redacted).
 *
 * The document redactor is a small hand-written tokenizer on purpose: it copies the upstream's bytes
 * through unchanged (numbers keep their exact digits, formatting is kept) and only swaps a blocked field's
 * value for "[redacted]". The streaming parsers on npm (@streamparser/json, stream-json, jsonparse) emit
 * parsed values or tokens, so we would have to re-serialize everything (losing big-number precision) just
 * to change a few fields. Only the current line (SSE/NDJSON) or the current key/scalar token is held.
 */
import { AivaultError } from '../../core/errors.js';
import { redactJsonValue, REDACTED } from './sanitize.js';

/** Longest SSE/NDJSON line or JSON scalar held while streaming (a longer one fails closed). */
export const MAX_BLOCKLIST_TOKEN_BYTES = 8 * 1024 * 1024;
const MAX_KEY_BYTES = 4096;

export interface BlocklistStream {
  /** Redacted bytes that can go out now (possibly empty). Throws policy_violation on non-JSON. */
  push(chunk: Uint8Array): Uint8Array;
  /** The rest; throws policy_violation when the body ended inside a JSON value. */
  end(): Uint8Array;
}

function notJson(what: string): AivaultError {
  return new AivaultError(
    'policy_violation',
    `response blocklist is set but the upstream ${what} is not JSON; it was withheld`,
  );
}

const EMPTY = new Uint8Array(0);
const REDACTED_JSON = Buffer.from(JSON.stringify(REDACTED), 'utf8');

function join(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 0) return EMPTY;
  if (parts.length === 1) return parts[0] as Uint8Array;
  return Buffer.concat(parts);
}

const LINE_STREAM_RE = /^\s*(text\/event-stream|application\/(x-)?(ndjson|jsonl|jsonlines))\b/i;

/** SSE and NDJSON bodies are a sequence of JSON documents, one per line (even when buffered). */
export function isLineStream(contentType: string | undefined): boolean {
  return LINE_STREAM_RE.test(contentType ?? '');
}

/** Pick the shape for a response content-type (see the header). */
export function createBlocklistStream(
  blocklist: readonly string[],
  contentType: string | undefined,
): BlocklistStream {
  const set = new Set(blocklist);
  if (!isLineStream(contentType)) return createJsonDocumentStream(set);
  return createLineStream(set, /event-stream/i.test(contentType ?? '') ? 'sse' : 'ndjson');
}

/** SSE / NDJSON: hold one line at a time; JSON lines are parsed, redacted, re-serialized. */
function createLineStream(blocklist: ReadonlySet<string>, kind: 'sse' | 'ndjson'): BlocklistStream {
  let partial: Uint8Array = EMPTY;
  const redactLine = (line: Buffer): Uint8Array => {
    let text = line.toString('utf8');
    const cr = text.endsWith('\r') ? '\r' : '';
    if (cr) text = text.slice(0, -1);
    let prefix = '';
    let payload = text;
    if (kind === 'sse') {
      if (!text.startsWith('data:')) return line; // event:, id:, retry:, comments, blank lines
      prefix = text.startsWith('data: ') ? 'data: ' : 'data:';
      payload = text.slice(prefix.length);
      if (payload.trim() === '[DONE]') return line;
    } else if (text.trim() === '') return line;
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch {
      throw notJson(kind === 'sse' ? 'event stream data' : 'line stream');
    }
    return Buffer.from(`${prefix}${JSON.stringify(redactJsonValue(parsed, blocklist))}${cr}`, 'utf8');
  };
  const NL = Buffer.from('\n');
  return {
    push(chunk) {
      const buf = partial.byteLength === 0 ? Buffer.from(chunk) : Buffer.concat([partial, chunk]);
      const out: Uint8Array[] = [];
      let start = 0;
      for (let nl = buf.indexOf(0x0a); nl >= 0; nl = buf.indexOf(0x0a, start)) {
        out.push(redactLine(buf.subarray(start, nl)), NL);
        start = nl + 1;
      }
      partial = buf.subarray(start).slice();
      if (partial.byteLength > MAX_BLOCKLIST_TOKEN_BYTES) throw notJson('stream line (too long to inspect)');
      return join(out);
    },
    end() {
      const last = partial;
      partial = EMPTY;
      return last.byteLength === 0 ? EMPTY : redactLine(Buffer.from(last));
    },
  };
}

const enum S {
  Value, // a value must come (top level, after '[', ',' in an array, ':')
  ValueOrClose, // right after '[': a value or ']'
  KeyOrClose, // right after '{': a key or '}'
  Key, // after ',' in an object
  Colon,
  After, // after a value: ',' or the closing bracket, or (top level) only whitespace
  Str, // inside a string
  Scalar, // inside a number / true / false / null
  Done,
}

const SCALAR_RE = /^(?:-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)$/;

function isWs(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

function isScalarByte(b: number): boolean {
  return (
    (b >= 0x30 && b <= 0x39) ||
    (b >= 0x61 && b <= 0x7a) ||
    b === 0x2d ||
    b === 0x2b ||
    b === 0x2e ||
    b === 0x45
  );
}

/** One JSON document, rewritten as it streams (see the header). */
function createJsonDocumentStream(blocklist: ReadonlySet<string>): BlocklistStream {
  let state: S = S.Value;
  const stack: number[] = []; // 0x7b '{' or 0x5b '['
  let strIsKey = false;
  let escape = false;
  let key: number[] = [];
  let keyTooLong = false;
  let blockNext = false;
  let scalar = '';
  let sawValue = false;
  /** Depth at which a blocked value started; -1 when not suppressing. */
  let suppressDepth = -1;

  const startValue = (
    b: number,
    i: number,
    out: Uint8Array[],
    buf: Uint8Array,
    emit: { from: number },
  ): S => {
    sawValue = true;
    if (blockNext && suppressDepth < 0) {
      if (i > emit.from) out.push(buf.subarray(emit.from, i));
      out.push(REDACTED_JSON);
      suppressDepth = stack.length;
    }
    blockNext = false;
    if (b === 0x7b) {
      stack.push(b);
      return S.KeyOrClose;
    }
    if (b === 0x5b) {
      stack.push(b);
      return S.ValueOrClose;
    }
    if (b === 0x22) {
      strIsKey = false;
      return S.Str;
    }
    if (isScalarByte(b)) {
      scalar = String.fromCharCode(b);
      return S.Scalar;
    }
    throw notJson('response');
  };

  /** A value just ended at byte i (inclusive when `inclusive`): stop suppressing if it was the blocked one. */
  const valueDone = (i: number, inclusive: boolean, emit: { from: number }): S => {
    if (suppressDepth >= 0 && stack.length === suppressDepth) {
      suppressDepth = -1;
      emit.from = inclusive ? i + 1 : i;
    }
    return stack.length === 0 ? S.Done : S.After;
  };

  const step = (b: number, i: number, out: Uint8Array[], buf: Uint8Array, emit: { from: number }): void => {
    switch (state) {
      case S.Str:
        if (escape) escape = false;
        else if (b === 0x5c) escape = true;
        else if (b === 0x22) {
          if (strIsKey) {
            if (!keyTooLong) {
              let name: string;
              try {
                name = JSON.parse(`"${Buffer.from(key).toString('utf8')}"`) as string;
              } catch {
                throw notJson('response');
              }
              blockNext = blocklist.has(name);
            }
            state = S.Colon;
          } else state = valueDone(i, true, emit);
          return;
        } else if (b < 0x20) throw notJson('response');
        if (strIsKey) {
          if (key.length < MAX_KEY_BYTES) key.push(b);
          else keyTooLong = true;
        }
        return;
      case S.Scalar:
        if (isScalarByte(b)) {
          scalar += String.fromCharCode(b);
          if (scalar.length > 1024) throw notJson('response');
          return;
        }
        if (!SCALAR_RE.test(scalar)) throw notJson('response');
        state = valueDone(i, false, emit);
        step(b, i, out, buf, emit); // the delimiter belongs to the enclosing structure
        return;
      default:
        break;
    }
    if (isWs(b)) return;
    switch (state) {
      case S.Value:
        state = startValue(b, i, out, buf, emit);
        return;
      case S.ValueOrClose:
        if (b === 0x5d) {
          stack.pop();
          state = valueDone(i, true, emit);
          return;
        }
        state = startValue(b, i, out, buf, emit);
        return;
      case S.KeyOrClose:
      case S.Key:
        if (b === 0x7d && state === S.KeyOrClose) {
          stack.pop();
          state = valueDone(i, true, emit);
          return;
        }
        if (b !== 0x22) throw notJson('response');
        strIsKey = true;
        key = [];
        keyTooLong = false;
        state = S.Str;
        return;
      case S.Colon:
        if (b !== 0x3a) throw notJson('response');
        state = S.Value;
        return;
      case S.After: {
        const top = stack[stack.length - 1];
        if (b === 0x2c) {
          state = top === 0x7b ? S.Key : S.Value;
          return;
        }
        if ((b === 0x7d && top === 0x7b) || (b === 0x5d && top === 0x5b)) {
          stack.pop();
          state = valueDone(i, true, emit);
          return;
        }
        throw notJson('response');
      }
      case S.Done:
        throw notJson('response');
      default:
        return;
    }
  };

  return {
    push(chunk) {
      const out: Uint8Array[] = [];
      const emit = { from: 0 };
      for (let i = 0; i < chunk.byteLength; i++) step(chunk[i] as number, i, out, chunk, emit);
      if (suppressDepth < 0 && emit.from < chunk.byteLength) out.push(chunk.subarray(emit.from));
      return join(out);
    },
    end() {
      if (state === S.Scalar) {
        if (!SCALAR_RE.test(scalar)) throw notJson('response');
        state = stack.length === 0 ? S.Done : S.After;
      }
      if (sawValue && state !== S.Done) throw notJson('response (it ended inside a JSON value)');
      return EMPTY;
    },
  };
}

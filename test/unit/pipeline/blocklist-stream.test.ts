import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createBlocklistStream,
  isLineStream,
} from '../../../src/request-worker/pipeline/blocklist-stream.js';
import { redactJsonValue } from '../../../src/request-worker/pipeline/sanitize.js';

function run(list: string[], ct: string | undefined, body: string, cuts: readonly number[] = []): string {
  const s = createBlocklistStream(list, ct);
  const bytes = Buffer.from(body, 'utf8');
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of [...new Set(cuts.map((x) => x % (bytes.length + 1)))].sort((a, b) => a - b)) {
    out.push(s.push(bytes.subarray(prev, c)));
    prev = c;
  }
  out.push(s.push(bytes.subarray(prev)), s.end());
  return Buffer.concat(out).toString('utf8');
}

describe('streamed JSON document', () => {
  it('replaces blocked values (any type, nested) and keeps every other byte as sent', () => {
    const body =
      '{ "id": 12345678901234567890, "token": {"a":[1,{"token":"x"}]}, "keep": "v",\n "n": [ "token" ] }';
    expect(run(['token'], 'application/json', body)).toBe(
      '{ "id": 12345678901234567890, "token": "[redacted]", "keep": "v",\n "n": [ "token" ] }',
    );
    expect(run(['id', 'keep'], 'application/json', body, [3, 9, 20, 40])).toBe(
      '{ "id": "[redacted]", "token": {"a":[1,{"token":"x"}]}, "keep": "[redacted]",\n "n": [ "token" ] }',
    );
  });

  it('matches escaped key names', () => {
    expect(run(['secret'], 'application/json', '{"s\\u0065cret":"v","x":1}')).toBe(
      '{"s\\u0065cret":"[redacted]","x":1}',
    );
  });

  it.each([['<html>error</html>'], ['{"a":1} trailing'], ['{"a":tru}'], ['{"a" 1}'], ['[1,]x'], ['{"a":1']])(
    'fails closed on non-JSON: %s',
    (body) => {
      expect(() => run(['a'], 'application/json', body)).toThrow(/not JSON/);
    },
  );

  it('a member named "__proto__" stays a member and is redacted like any other (buffered and streamed)', () => {
    const body = '{"__proto__":{"id":"secret-1","keep":1},"id":"secret-2"}';
    const buffered = JSON.stringify(redactJsonValue(JSON.parse(body), new Set(['id'])));
    expect(buffered).toBe('{"__proto__":{"id":"[redacted]","keep":1},"id":"[redacted]"}');
    const streamed = run(['id'], 'application/json', body, [5, 13]);
    expect(streamed).toBe(buffered);
  });

  it('property: any chunking gives the same result, equal to the buffered redaction', () => {
    fc.assert(
      fc.property(
        fc.jsonValue(),
        fc.constantFrom(0, 2),
        fc.array(fc.nat(), { maxLength: 12 }),
        fc.subarray(['a', 'b', 'id', 'token', '']),
        (value, indent, cuts, list) => {
          const body = JSON.stringify(value, null, indent);
          const streamed = run(list, 'application/json', body, cuts);
          expect(streamed).toBe(run(list, 'application/json', body));
          expect(JSON.parse(streamed)).toEqual(redactJsonValue(JSON.parse(body), new Set(list)));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('SSE and NDJSON', () => {
  const sse =
    'event: msg\ndata: {"id":"1","text":"hi"}\n\n: comment\ndata: {"id":"2","text":"yo"}\n\ndata: [DONE]\n\n';

  it('redacts each data: event, passes other lines and [DONE], whatever the chunking', () => {
    const want =
      'event: msg\ndata: {"id":"[redacted]","text":"hi"}\n\n: comment\ndata: {"id":"[redacted]","text":"yo"}\n\ndata: [DONE]\n\n';
    for (const cuts of [[], [5, 17, 30], [1, 2, 3, 60, 61]]) {
      expect(run(['id'], 'text/event-stream; charset=utf-8', sse, cuts)).toBe(want);
    }
  });

  it('an event is released as soon as its line is complete', () => {
    const s = createBlocklistStream(['id'], 'text/event-stream');
    expect(Buffer.from(s.push(Buffer.from('data: {"id":1}\n\ndata: {"i'))).toString()).toBe(
      'data: {"id":"[redacted]"}\n\n',
    );
  });

  it('a non-JSON data line fails closed', () => {
    expect(() => run(['id'], 'text/event-stream', 'data: plain text\n\n')).toThrow(/not JSON/);
  });

  it('NDJSON lines', () => {
    expect(run(['k'], 'application/x-ndjson', '{"k":1}\n{"j":2}\n', [4])).toBe(
      '{"k":"[redacted]"}\n{"j":2}\n',
    );
    expect(isLineStream('application/jsonl')).toBe(true);
    expect(isLineStream('application/json')).toBe(false);
  });
});

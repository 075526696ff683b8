import { describe, expect, it } from 'vitest';
import {
  H2_MAX_STREAMS_PER_CONNECTION,
  streamsPerConnection,
} from '../../../src/request-worker/pipeline/h2-multiplex.js';

describe('streamsPerConnection', () => {
  it('never pipelines HTTP/1.1, whatever a stale h2 limit says', () => {
    expect(streamsPerConnection(false, undefined)).toBe(1);
    expect(streamsPerConnection(false, 250)).toBe(1);
  });

  it("follows the h2 peer's limit, capped", () => {
    expect(streamsPerConnection(true, 5)).toBe(5);
    expect(streamsPerConnection(true, 128)).toBe(H2_MAX_STREAMS_PER_CONNECTION);
    expect(streamsPerConnection(true, 2 ** 32 - 1)).toBe(H2_MAX_STREAMS_PER_CONNECTION);
    expect(streamsPerConnection(true, undefined)).toBe(H2_MAX_STREAMS_PER_CONNECTION);
  });

  it('a peer announcing 0 or nonsense still gets one call at a time, not none', () => {
    expect(streamsPerConnection(true, 0)).toBe(1);
    expect(streamsPerConnection(true, Number.NaN)).toBe(1);
    expect(streamsPerConnection(true, 7.9)).toBe(7);
  });
});

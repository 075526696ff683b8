/**
 * Reusable buffers for the large chunks of streamed bodies, passed back and forth between a request worker
 * and the main thread instead of allocated per chunk.
 *
 * Why: a 64 MiB download crosses as ~500 chunk messages (~1,000 before they grew to 128 KiB). With a
 * fresh ArrayBuffer per message, each one is zero-filled and page-faulted in the worker, and becomes
 * garbage on the main thread once written to the client; that external memory is what drove both threads into a full collection every ~70 ms
 * (bench/PROFILE.md, "Large bodies: one copy, and buffers that go back"). A pooled buffer is transferred to
 * the main thread with its chunk, and transferred back with a later credit once the client's transport
 * no longer needs its bytes. Only chunks of at least MIN_POOLED_BYTES use it: a small SSE event keeps an
 * exact-size buffer, so a transport that holds bytes (a Node socket that is not draining) holds no more
 * than it was sent.
 */

/** A pooled buffer's size: a coalesced message (COALESCE_BYTES, 128 KiB) plus one more TLS record of 16 KiB. */
export const POOLED_BYTES = 144 * 1024;

/**
 * Chunks below this size get an exact-size buffer of their own (see above): a pooled buffer then holds at
 * most 2.25× the bytes it carries while a transport keeps it.
 */
export const MIN_POOLED_BYTES = 64 * 1024;

/** Free buffers a request worker keeps (at most POOLED_BYTES × this, per worker, when idle). */
export const MAX_FREE_BUFFERS = 8;

/** Buffers the main thread holds for one worker until a message can carry them back. */
export const MAX_RETURNING_BUFFERS = 8;

/** Whether a body of `bytes` goes out in a pooled buffer. */
export function usesPooledBuffer(bytes: number): boolean {
  return bytes >= MIN_POOLED_BYTES && bytes <= POOLED_BYTES;
}

/** A request worker's free buffers (one per worker port; every call on the port shares it). */
export class ChunkBuffers {
  readonly #free: ArrayBuffer[] = [];

  /** A free buffer, or a new one. */
  take(): ArrayBuffer {
    return this.#free.pop() ?? new ArrayBuffer(POOLED_BYTES);
  }

  /** Buffers the main thread gave back (anything that is not a whole pooled buffer is dropped). */
  give(buffers: readonly ArrayBuffer[]): void {
    for (const b of buffers)
      if (b.byteLength === POOLED_BYTES && this.#free.length < MAX_FREE_BUFFERS) this.#free.push(b);
  }

  get free(): number {
    return this.#free.length;
  }
}

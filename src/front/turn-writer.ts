/**
 * Frames to a connection go out once per event-loop turn, all of that turn's frames in one write.
 *
 * Why: on the unix socket, answers arrive from the request workers as port messages, each its own callback
 * outside any uWS handler, where every `ws.send` is a `write` syscall of its own: 25% of the main thread's
 * busy time at c=64 (issue 12, bench/PROFILE.md). Not a microtask: microtasks run between the port messages
 * of one turn; setImmediate runs once the poll phase delivered them all, before the loop waits again, so
 * nothing waits longer than the turn it was sent in, and each connection's frames keep their order.
 */

import { messageBytes, type Message } from './uws.js';

/** One connection's frames of this turn, and their bytes (part of what the connection has unsent). */
export interface TurnOutbox {
  /** A frame is its bytes, or the parts whose concatenation they are (a body chunk behind its head). */
  frames: Message[];
  bytes: number;
  /** Called once these frames were written or dropped: their bytes may be reused (pooled chunk buffers). */
  released?: (() => void)[] | undefined;
}

export interface TurnWriterOptions<S> {
  /** The connection's outbox; undefined once it closed (its frames are dropped). */
  outboxOf(socket: S): TurnOutbox | undefined;
  /** Write `frames` to `socket` as one write (uWS cork). */
  write(socket: S, frames: readonly Message[]): void;
  /** After a write: the frames no longer count as unsent (calls held back by them may go on). */
  afterWrite?(socket: S): void;
  /** How the turn's flush is scheduled (tests); setImmediate by default. */
  schedule?(flush: () => void): void;
}

export interface TurnWriter<S> {
  /** `released`: called once the frame was written (uWS copied what it could not send) or dropped. */
  send(socket: S, frame: Message, released?: () => void): void;
  /** Write what `socket` holds now (before a close frame). */
  flush(socket: S): void;
  /** The connection closed: forget it (a closed uWS socket must not be touched again). */
  forget(socket: S): void;
}

export function createTurnWriter<S>(opts: TurnWriterOptions<S>): TurnWriter<S> {
  const schedule = opts.schedule ?? ((fn: () => void): void => void setImmediate(fn));
  const dirty = new Set<S>();
  let queued = false;

  const flush = (socket: S): void => {
    dirty.delete(socket);
    const box = opts.outboxOf(socket);
    if (!box || box.frames.length === 0) return;
    const frames = box.frames;
    const released = box.released;
    box.frames = [];
    box.bytes = 0;
    box.released = undefined;
    opts.write(socket, frames);
    // Before afterWrite: the credits it may grant then carry the released buffers back to their worker.
    released?.forEach((r) => r());
    opts.afterWrite?.(socket);
  };
  const flushAll = (): void => {
    queued = false;
    for (const socket of dirty) flush(socket);
  };

  return {
    send(socket, frame, released) {
      const box = opts.outboxOf(socket);
      if (!box) {
        released?.();
        return;
      }
      box.frames.push(frame);
      if (released) (box.released ??= []).push(released);
      box.bytes += messageBytes(frame);
      if (box.frames.length > 1) return;
      dirty.add(socket);
      if (queued) return;
      queued = true;
      schedule(flushAll);
    },
    flush,
    forget(socket) {
      dirty.delete(socket);
      const box = opts.outboxOf(socket);
      if (box) {
        const released = box.released;
        box.frames = [];
        box.bytes = 0;
        box.released = undefined;
        released?.forEach((r) => r());
      }
    },
  };
}

/**
 * Messages for one MessagePort, gathered over a moment and posted as one: a call's start, credits and
 * answers between the main thread and a request worker (src/core/threads/call-port.ts) travel in arrays
 * when several are ready at once.
 *
 * Why: a `postMessage` has a fixed cost far above its payload's: a serializer and a queue entry on the
 * sending thread, and on the receiving one a deserializer plus a MessageEvent dispatched through Node's
 * EventTarget machinery. Measured on this 2-core VM (two threads, a `full` answer of six headers and a
 * transferred 1 KiB body): ~16.5 µs of CPU per message alone, ~10 in pairs, ~7.8 in fours, ~6 in eights
 * (bench/PROFILE.md, "Messages in batches"). A small call is two messages (its start, its answer), so at
 * c=64 batching takes a good part of the cross-thread cost off every call.
 *
 * When a batch goes out (`flush`):
 * - 'microtask' (the request worker): at the end of the current callback. A worker posts most answers
 *   from one callback per turn (the audit's group commit delivers every call whose line it wrote;
 *   src/stores/audit/audit-log.ts) or from the port sinks' end-of-turn flushes, so nothing waits longer
 *   than the code that is already running.
 * - 'immediate' (the main thread): in this loop iteration's check phase. Calls start from uWS's socket
 *   callbacks in the poll phase, one callback per client message, so a microtask would batch nothing;
 *   the check phase follows the poll phase of the same iteration, so no call waits for another turn.
 * Order is kept: everything goes out in the order it was posted, one batch after another.
 */
import type { Transferable } from 'node:worker_threads';

/** What posts a message (a MessagePort, or an outbox in front of one). */
export interface MessagePoster {
  postMessage(msg: unknown, transfer?: readonly Transferable[]): void;
}

export type FlushAt = 'microtask' | 'immediate';

/** Work a sender does once at the end of the turn (a port sink's flush: src/core/threads/call-port.ts). */
export interface TurnTask {
  atTurnEnd(): void;
}

/**
 * A batch arrives as an array of messages; a lone message as itself (no array around it). Protocol
 * messages are objects, never arrays, so the receiver tells them apart with Array.isArray.
 */
export function eachMessage<T>(data: T | T[], handle: (msg: T) => void): void {
  if (!Array.isArray(data)) {
    handle(data);
    return;
  }
  for (const msg of data) handle(msg);
}

/** Told of a message that could not be posted (the owner fails the call it belonged to). */
export type Undeliverable = (msg: unknown, err: unknown) => void;

/** One transfer list for a batch (every message's transferables, in order). */
function joined(lists: readonly (readonly Transferable[] | undefined)[]): Transferable[] {
  const all: Transferable[] = [];
  for (const list of lists) if (list) for (const t of list) all.push(t);
  return all;
}

export class PortOutbox implements MessagePoster {
  readonly #port: MessagePoster;
  readonly #flushAt: FlushAt;
  readonly #undeliverable: Undeliverable | undefined;
  #queue: unknown[] = [];
  /** Each queued message's own transfer list: joined for the batch, or used alone when posting one by one. */
  #transfers: (readonly Transferable[] | undefined)[] = [];
  #armed = false;
  readonly #flush = (): void => this.flush();
  #tasks: TurnTask[] = [];
  readonly #runTasks = (): void => {
    const tasks = this.#tasks;
    this.#tasks = [];
    try {
      for (const task of tasks) task.atTurnEnd();
    } finally {
      this.flush();
    }
  };

  constructor(port: MessagePoster, flushAt: FlushAt, undeliverable?: Undeliverable) {
    this.#port = port;
    this.#flushAt = flushAt;
    this.#undeliverable = undeliverable;
  }

  /**
   * Queue `msg`; its transferables move with the batch (they are detached when it is posted, not here:
   * the caller must not touch them after this call either way).
   */
  postMessage(msg: unknown, transfer?: readonly Transferable[]): void {
    this.#queue.push(msg);
    this.#transfers.push(transfer);
    if (this.#armed) return;
    this.#armed = true;
    if (this.#flushAt === 'microtask') queueMicrotask(this.#flush);
    else setImmediate(this.#flush);
  }

  /**
   * Run `task.atTurnEnd()` in this turn's check phase, together with every other task scheduled here, and
   * post what they queue as one batch. One immediate for all of them: Node runs the microtask queue
   * between two immediates, so sinks with an immediate each would post one message each.
   */
  runAtTurnEnd(task: TurnTask): void {
    if (this.#tasks.push(task) === 1) setImmediate(this.#runTasks);
  }

  /**
   * Post `msg` now, together with whatever is queued ahead of it (order kept). For messages that another
   * thread waits on and that are often posted from the check phase itself, where a scheduled flush would
   * wait for the next loop iteration: a stream's credits, granted after the turn writer wrote its chunks.
   */
  postNow(msg: unknown, transfer?: readonly Transferable[]): void {
    this.postMessage(msg, transfer);
    this.flush();
  }

  /**
   * Post what is queued now (also what the scheduled flush does). Never throws: a message the port
   * refuses (one that cannot be cloned) must not take the batch or the thread down with it, as it would
   * from a microtask or an immediate. The batch is then posted message by message, and the refused ones
   * go to `undeliverable`, which fails their call.
   */
  flush(): void {
    this.#armed = false;
    const queue = this.#queue;
    if (queue.length === 0) return;
    const transfers = this.#transfers;
    this.#queue = [];
    this.#transfers = [];
    try {
      if (queue.length === 1) this.#port.postMessage(queue[0], transfers[0]);
      else this.#port.postMessage(queue, joined(transfers));
      return;
    } catch {
      // One by one below: a refused clone transfers nothing, so every buffer is still here.
    }
    for (const [i, msg] of queue.entries()) {
      try {
        this.#port.postMessage(msg, transfers[i]);
      } catch (err) {
        this.#undeliverable?.(msg, err);
      }
    }
  }
}

/**
 * A real MessageChannel for tests of the worker side of a call (src/core/threads/call-port.ts): `port` is
 * what the worker's sink posts on; `received` collects what reaches the main thread's end, in order.
 * Both ends close when the test finishes.
 */
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { onTestFinished } from 'vitest';
import type { CallMessage } from '../../src/core/threads/call-port.js';
import { eachMessage } from '../../src/core/threads/port-outbox.js';

export interface PortChannel {
  port: MessagePort;
  received: CallMessage[];
  /** Resolves once `n` messages arrived. */
  waitFor(n: number): Promise<void>;
}

export function portChannel(): PortChannel {
  const { port1, port2 } = new MessageChannel();
  onTestFinished(() => {
    port1.close();
    port2.close();
  });
  const received: CallMessage[] = [];
  let wake: (() => void) | undefined;
  // The sink's outbox posts a batch as an array (src/core/threads/port-outbox.ts): one entry per message.
  port2.on('message', (data: CallMessage | CallMessage[]) => {
    eachMessage(data, (m) => received.push(m));
    wake?.();
  });
  return {
    port: port1,
    received,
    waitFor: async (n) => {
      while (received.length < n) await new Promise<void>((r) => (wake = r));
    },
  };
}

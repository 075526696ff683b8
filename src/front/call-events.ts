/**
 * The daemon main thread's feed of call events: one `start` and one `end` per relayed call, for every
 * transport (unix socket, /aivault/proxy, /v/…, /aivault/ws, the HTTPS proxy). Consumers: the live-calls
 * view of the dashboard and anything else on the main thread that watches calls as they happen.
 * Metrics do NOT go through here (request workers count in shared memory, issue 16).
 *
 * An event carries routing labels only — capability, method, path (no query string), status, timings —
 * never a header, a body, a token or a secret value. Main thread only; synchronous fan-out, so a
 * listener must be cheap and must not throw (a throwing listener is dropped, never the call).
 */

export type CallTransport = 'socket' | 'proxy' | 'passthrough' | 'ws' | 'https-proxy';

export interface CallStartEvent {
  type: 'start';
  /** Daemon-unique id of the call (monotonic per daemon run). */
  id: number;
  at: number;
  transport: CallTransport;
  capability: string;
  method: string;
  /** Path without query string. */
  path: string;
}

export interface CallEndEvent {
  type: 'end';
  id: number;
  at: number;
  /** Upstream status, or 0 when the call ended before a response head. */
  status: number;
  /** Stable error code when the call failed (`policy_denied`, `rate_limited`, …). */
  error?: string;
  durationMs: number;
}

export type CallEvent = CallStartEvent | CallEndEvent;
export type CallListener = (event: CallEvent) => void;

const listeners = new Set<CallListener>();
let nextId = 1;

/** A fresh call id for `emitCallEvent`. */
export function nextCallId(): number {
  return nextId++;
}

/** True when someone listens: lets the hot path skip building events nobody reads. */
export function hasCallListeners(): boolean {
  return listeners.size > 0;
}

export function emitCallEvent(event: CallEvent): void {
  for (const listener of listeners) {
    try {
      listener(event);
    } catch {
      listeners.delete(listener);
    }
  }
}

/** Subscribe; returns the unsubscribe function. */
export function subscribeCalls(listener: CallListener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

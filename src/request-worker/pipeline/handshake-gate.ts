/**
 * Admission of new upstream connections (request worker): while this thread is saturated, at most
 * `min` connection set-ups (TCP + TLS handshake) run at once and the rest wait in arrival order; while it
 * has spare time, every one starts at once.
 *
 * Why: a TLS handshake costs this thread ~1–2 ms of CPU, spread over several event-loop callbacks. When
 * more arrive than the thread can finish (1,000 SSE streams opened within a second, each needing its own
 * HTTP/1.1 connection), they share the thread round-robin and ALL finish late, together: in the bench's
 * 1,000-stream section every stream's first event came out in one batch ~2 s after the ramp began (p99
 * delivery delay 450–700 ms, node-floor 11–20 ms). Admitted in order, the early ones finish early and
 * their events flow while later ones connect (p99 ~60 ms with 16). A fixed cap would instead throttle
 * set-ups to a distant upstream, where a handshake mostly waits on round trips (16 in flight at 200 ms
 * each is 80 per second): so the cap applies only while the thread's event loop is busy, and the gate
 * is per origin, so a slow or unreachable host never holds up connections to another.
 */
import { performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { buildConnector as UndiciBuildConnector } from 'undici';

/** Connection set-ups that always run at once, per origin. */
export const HANDSHAKES_ALWAYS = 16;
/** The thread counts as saturated when its event loop was busy at least this share of the last window. */
const SATURATED_ELU = 0.9;
const WINDOW_MS = 50;

/** Is this thread's event loop (nearly) always busy lately? Re-measured at most every WINDOW_MS. */
export function createSaturation(
  elu: (prev?: EventLoopUtilization) => EventLoopUtilization = (p) => performance.eventLoopUtilization(p),
): () => boolean {
  let mark = elu();
  let saturated = false;
  return () => {
    const d = elu(mark);
    if (d.idle + d.active >= WINDOW_MS) {
      saturated = d.utilization >= SATURATED_ELU;
      mark = elu();
    }
    return saturated;
  };
}

type Callback = (err: Error | null, socket: unknown) => void;

export function gateHandshakes(
  inner: UndiciBuildConnector.connector,
  saturated: () => boolean,
  always = HANDSHAKES_ALWAYS,
): UndiciBuildConnector.connector {
  const origins = new Map<string, { inFlight: number; waiting: (() => void)[] }>();
  return (options, callback) => {
    const key = `${options.protocol}//${options.hostname}:${options.port}`;
    let origin = origins.get(key);
    if (!origin) {
      origin = { inFlight: 0, waiting: [] };
      origins.set(key, origin);
    }
    const o = origin;
    const admit = (): boolean => o.inFlight < always || !saturated();
    const start = (): void => {
      o.inFlight++;
      let done = false;
      const release = (): void => {
        if (done) return;
        done = true;
        o.inFlight--;
        while (o.waiting.length > 0 && admit()) o.waiting.shift()?.();
        if (o.inFlight === 0 && o.waiting.length === 0) origins.delete(key);
      };
      try {
        inner(options, ((err: Error | null, socket: unknown) => {
          release();
          (callback as Callback)(err, socket);
        }) as typeof callback);
      } catch (err) {
        release();
        throw err;
      }
    };
    if (o.waiting.length === 0 && admit()) start();
    else o.waiting.push(start);
  };
}

/**
 * Emits the call-event bus's start/end events (call-events.ts) for calls started on the daemon main
 * thread. `tapCall` wraps one call's handlers; when nobody listens (the common case: no dashboard open)
 * it returns the handlers unchanged and builds nothing, so the hot path pays one Set.size read.
 * Labels only: capability, method, path without its query, status, duration, error code.
 */
import type { CallHandlers, InvokeTask } from '../pool/pool-call.js';
import type { WsConnect } from '../core/threads/ws-protocol.js';
import {
  emitCallEvent,
  hasCallListeners,
  nextCallId,
  type CallStartEvent,
  type CallTransport,
} from './call-events.js';

const withoutQuery = (path: string): string => {
  const q = path.indexOf('?');
  return q < 0 ? path : path.slice(0, q);
};

/** Routing labels of a call as its transport handed it over (never a header or a body). */
function labelsOf(task: InvokeTask): {
  transport: CallTransport;
  capability: string;
  method: string;
  path: string;
} {
  if ('envelope' in task) {
    const r = task.envelope.request as { method?: unknown; path?: unknown } | undefined;
    return {
      transport: 'socket',
      capability: String(task.envelope.capability),
      method: typeof r?.method === 'string' ? r.method.toUpperCase() : '',
      path: typeof r?.path === 'string' ? withoutQuery(r.path) : '',
    };
  }
  if ('passthrough' in task) {
    // The worker picks the capability; the credential the URL names is what this thread knows.
    const p = task.passthrough;
    return { transport: 'passthrough', capability: `/v/${p.credential}`, method: p.method, path: p.path };
  }
  // /aivault/proxy: the JSON envelope is parsed here only while someone watches (it is moved to the worker).
  try {
    const env = JSON.parse(Buffer.from(task.envelopeJson).toString('utf8')) as {
      capability?: unknown;
      request?: { method?: unknown; path?: unknown };
    };
    return {
      transport: 'proxy',
      capability: typeof env.capability === 'string' ? env.capability : '',
      method: typeof env.request?.method === 'string' ? env.request.method.toUpperCase() : '',
      path: typeof env.request?.path === 'string' ? withoutQuery(env.request.path) : '',
    };
  } catch {
    return { transport: 'proxy', capability: '', method: '', path: '' };
  }
}

/** Emit a call's start now; the returned `end` emits its end once (later calls are ignored). */
function beginCall(labels: Omit<CallStartEvent, 'type' | 'id' | 'at'>): {
  end(status: number, error?: string): void;
} {
  const start: CallStartEvent = { type: 'start', id: nextCallId(), at: Date.now(), ...labels };
  emitCallEvent(start);
  let ended = false;
  return {
    end(status, error) {
      if (ended) return;
      ended = true;
      const at = Date.now();
      emitCallEvent({
        type: 'end',
        id: start.id,
        at,
        status,
        durationMs: at - start.at,
        ...(error ? { error } : {}),
      });
    },
  };
}

/** Handlers that also report the call's start (now) and end (its terminal message) on the bus. */
export function tapCall(task: InvokeTask, handlers: CallHandlers, transport?: CallTransport): CallHandlers {
  if (!hasCallListeners()) return handlers;
  const labels = labelsOf(task);
  const call = beginCall({ ...labels, transport: transport ?? labels.transport });
  let status = 0;
  const end = (error?: string): void => call.end(status, error);
  return {
    onMessage(msg) {
      switch (msg.t) {
        case 'head':
          status = msg.status;
          break;
        case 'full':
          status = msg.status;
          end();
          break;
        case 'end':
          end();
          break;
        case 'error':
          end(msg.error.error);
          break;
        default:
          break;
      }
      handlers.onMessage(msg);
    },
  };
}

/** Start/end events of one /aivault/ws relay (undefined when nobody listens). */
export function tapWs(connect: WsConnect): { end(status: number, error?: string): void } | undefined {
  if (!hasCallListeners()) return undefined;
  return beginCall({
    transport: 'ws',
    capability: connect.capability,
    method: 'GET',
    path: withoutQuery(connect.path),
  });
}

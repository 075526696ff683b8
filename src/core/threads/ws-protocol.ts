/**
 * Messages on a WebSocket-relay call's MessagePort (main thread ↔ request worker), for `GET /aivault/ws`.
 * The request worker owns the upstream `wss://` connection (it is the only place auth is injected); the
 * main thread owns the client socket. Backpressure both ways:
 * - upstream → client: the worker sends one `ws-msg` per credit and pauses the upstream socket at zero;
 *   the main thread returns a credit per message written while the client's send buffer is below the
 *   high-water mark, otherwise on uWS `drain`.
 * - client → upstream: the worker acknowledges bytes once the upstream socket has flushed them
 *   (`ws-ack`); the main thread refuses to hold more than a fixed window of unacknowledged bytes and
 *   closes the client (1013) rather than buffer without bound.
 * Carries frame payloads only: never a secret, never a key.
 */
import type { MessagePort } from 'node:worker_threads';
import type { RequestContext } from '../broker/types.js';
import type { WireError } from '../errors.js';
import type { ApprovalOutcome, ApprovalRequest } from '../../front/approvals.js';

/** Credits a relay starts with (upstream messages in flight before the first grant). */
export const WS_INITIAL_CREDITS = 16;
/** Max client→upstream bytes the main thread keeps unacknowledged before closing the client. */
export const WS_MAX_UNACKED_BYTES = 16 * 1024 * 1024;

export interface WsConnect {
  readonly capability: string;
  readonly path: string;
  readonly credential?: string;
  readonly headers?: readonly (readonly [string, string])[];
  /**
   * Subprotocols offered to the upstream (the HTTPS proxy forwards a client's Sec-WebSocket-Protocol,
   * minus any entry carrying a placeholder key). Never set from an /aivault/ws connect frame.
   */
  readonly protocols?: readonly string[];
}

export interface WsTask {
  kind: 'ws';
  connect: WsConnect;
  context: RequestContext;
  port: MessagePort;
}

export type WsWorkerToMain =
  | { t: 'ws-open'; protocol: string }
  | { t: 'ws-msg'; data: ArrayBuffer; binary: boolean }
  | { t: 'ws-ack'; bytes: number }
  | { t: 'ws-close'; code: number; reason: string }
  | { t: 'error'; error: WireError }
  /** The relay's capability needs an operator's approval: the main thread answers `approval`. */
  | { t: 'approval'; request: ApprovalRequest }
  | { t: 'need-crypto' };

export type WsMainToWorker =
  | { t: 'ws-send'; data: ArrayBuffer; binary: boolean }
  | { t: 'ws-close'; code: number; reason: string }
  | { t: 'credit'; n: number }
  | { t: 'abort' }
  | { t: 'approval'; outcome: ApprovalOutcome }
  | { t: 'crypto-port'; port: MessagePort };

/** Both ends of the relay (main thread and request worker) use this. A close code a peer may legally send (1005/1006/1015 are reserved for local reporting). */
export function sendableCloseCode(code: number): number {
  if (code === 1000 || (code >= 1001 && code <= 1014 && code !== 1005 && code !== 1006)) return code;
  if (code >= 3000 && code <= 4999) return code;
  return code === 1005 ? 1000 : 1011;
}

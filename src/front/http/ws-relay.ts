/**
 * The /aivault/ws WebSocket relay of the loopback HTTP listener (aivaultd main thread): the upgrade (peer,
 * Origin and proxy token checks), the first client frame `{capability, path, credential?, headers?}`, and
 * moving messages both ways with backpressure (credits toward the client, an unacked-bytes bound toward
 * the upstream). The request worker opens the upstream and makes every policy decision; a relay lives only
 * as long as its token (proxy-tokens.ts).
 */
import { AivaultError, ERRORS, fromWire, toWire } from '../../core/errors.js';
import {
  sendableCloseCode,
  WS_MAX_UNACKED_BYTES,
  type WsConnect,
  type WsMainToWorker,
} from '../../core/threads/ws-protocol.js';
import type { ProxyTokenRecord } from '../../stores/tokens/tokens.js';
import { sendMessage, type TemplatedApp, type WebSocket } from '../uws.js';
import { extractToken, isLoopbackOrigin, isLoopbackPeer } from '../http-passthrough.js';
import { Credits } from '../relay.js';
import { tapWs } from '../call-events-tap.js';
import type { ListenerContext } from './context.js';
import { tokenContext, type TokenRecheck } from './proxy-tokens.js';
import { statusLine, text } from './response.js';

const HIGH_WATER = 1024 * 1024;

/**
 * uWS's idle timeout for a relay's client: it pings after this minus a margin (4, 8 or 16 s; 16 here, so a
 * ping after 104 s of silence) and closes a client that does not answer within the margin, and its relay
 * with it (the upstream connection and the worker's task).
 * Every WebSocket client library answers pings on its own, so a healthy idle client stays. It was 0 ("no
 * timeout") with automatic pings on, which uWS turns into 0 − 4 as an unsigned short: a dead client was
 * noticed after ~18 h. uWS accepts 0 or at least 8.
 */
export const WS_IDLE_TIMEOUT_S = 120;

export interface WsData {
  peer: string;
  /** The proxy token the upgrade was verified with; re-checked for as long as the socket is open. */
  token: ProxyTokenRecord | undefined;
  tokenError: AivaultError | undefined;
  relay?: { post(msg: WsMainToWorker, transfer?: ArrayBuffer[]): void };
  /** Credits for the upstream's messages to this client (relay.ts). */
  credits?: Credits;
  connected: boolean;
  open: boolean;
  unacked: number;
  /** Call events of this relay (call-events-tap.ts), while someone watches. */
  events?: { end(status: number, error?: string): void };
}

/**
 * Mount `/aivault/ws`; `sockets` holds the open relays (the listener closes them at shutdown).
 * `idleTimeoutS`: see WS_IDLE_TIMEOUT_S (tests shorten it).
 */
export function mountWsRelay(
  app: TemplatedApp,
  ctx: ListenerContext,
  sockets: Set<WebSocket<WsData>>,
  recheck: TokenRecheck,
  idleTimeoutS: number = WS_IDLE_TIMEOUT_S,
): void {
  const { pool, verifier, audit } = ctx;

  const startRelay = (ws: WebSocket<WsData>, connect: WsConnect): void => {
    const d = ws.getUserData();
    const rec = d.token as ProxyTokenRecord;
    const events = tapWs(connect);
    if (events) d.events = events;
    try {
      const relay = pool.startWs({ connect, context: tokenContext(rec, d.peer) }, (msg) => {
        if (!d.open) return;
        switch (msg.t) {
          case 'ws-open':
            return;
          case 'ws-msg': {
            sendMessage(ws, new Uint8Array(msg.data), msg.binary);
            d.credits?.written();
            return;
          }
          case 'ws-ack':
            d.unacked = Math.max(0, d.unacked - msg.bytes);
            return;
          case 'ws-close':
            events?.end(101);
            d.open = false;
            ws.end(sendableCloseCode(msg.code), msg.reason);
            return;
          case 'error':
            events?.end(0, msg.error.error);
            d.open = false;
            ws.cork(() => {
              ws.send(JSON.stringify(toWire(fromWire(msg.error))), false);
              const policy = msg.error.error === 'policy_violation' || msg.error.error === 'approval_denied';
              ws.end(policy ? 1008 : 1011, msg.error.error);
            });
            return;
        }
      });
      d.relay = relay;
      d.credits = new Credits(relay, () => ws.getBufferedAmount() < HIGH_WATER);
    } catch (err) {
      const wire = toWire(err);
      events?.end(0, wire.error);
      ws.cork(() => {
        ws.send(JSON.stringify(wire), false);
        ws.end(1011, wire.error);
      });
    }
  };

  app.ws<WsData>('/aivault/ws', {
    maxPayloadLength: 64 * 1024 * 1024,
    maxBackpressure: 1024 * 1024 * 1024,
    closeOnBackpressureLimit: 0,
    idleTimeout: idleTimeoutS,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      const peer = text(res.getRemoteAddressAsText());
      const refuse = (message: string, note: string): void => {
        res
          .writeStatus('403 Forbidden')
          .writeHeader('content-type', 'application/json')
          .end(JSON.stringify({ error: 'policy_violation', message }));
        audit({ kind: 'http.refused', clientIp: peer, errorCode: 'policy_violation', note });
      };
      if (!ctx.allowRemote && !isLoopbackPeer(peer)) {
        refuse('non-loopback clients are refused', 'non-loopback peer');
        return;
      }
      // Browsers send Origin on every WebSocket upgrade and WebSockets are not covered by CORS: a page on
      // another site must not drive the relay (cross-site WebSocket hijacking). Non-browser clients send none.
      const origin = req.getHeader('origin');
      if (!ctx.allowRemote && origin !== '' && !isLoopbackOrigin(origin)) {
        refuse(
          'cross-origin WebSocket upgrades are refused: the Origin is not on loopback',
          'non-loopback origin',
        );
        return;
      }
      const token = extractToken({ authorization: req.getHeader('authorization') }, false);
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      let aborted = false;
      res.onAborted(() => (aborted = true));
      void verifier.verifyProxy(token).then(
        (rec) => {
          if (aborted) return;
          res.cork(() =>
            res.upgrade<WsData>(
              {
                peer,
                token: rec,
                tokenError: undefined,
                connected: false,
                open: true,
                unacked: 0,
              },
              key,
              protocol,
              extensions,
              context,
            ),
          );
        },
        (err: unknown) => {
          if (aborted) return;
          const wire = toWire(err);
          audit({
            kind: 'http.denied',
            path: '/aivault/ws',
            errorCode: wire.error,
            ...(peer ? { clientIp: peer } : {}),
          });
          res.cork(() =>
            res
              .writeStatus(statusLine(ERRORS[wire.error].http))
              .writeHeader('content-type', 'application/json')
              .end(JSON.stringify(wire)),
          );
        },
      );
    },
    open: (ws) => {
      sockets.add(ws);
      recheck.relayOpened();
    },
    message: (ws, message, isBinary) => {
      const d = ws.getUserData();
      const data = new Uint8Array(message).slice();
      if (!d.connected) {
        d.connected = true;
        let connect: WsConnect;
        try {
          if (!d.token || d.token.expiresAtMs <= Date.now()) {
            throw new AivaultError('token_invalid', 'proxy token expired');
          }
          connect = parseConnectFrame(Buffer.from(data).toString('utf8'));
        } catch (err) {
          const wire = toWire(err);
          audit({
            kind: 'ws',
            errorCode: wire.error,
            note: 'connect frame refused',
            ...(d.peer ? { clientIp: d.peer } : {}),
          });
          ws.cork(() => {
            ws.send(JSON.stringify(wire), false);
            ws.end(1008, wire.error);
          });
          return;
        }
        startRelay(ws, connect);
        return;
      }
      if (!d.relay) return;
      d.unacked += data.byteLength;
      if (d.unacked > WS_MAX_UNACKED_BYTES) {
        ws.end(1013, 'upstream is not keeping up');
        return;
      }
      d.relay.post({ t: 'ws-send', data: data.buffer, binary: isBinary }, [data.buffer]);
    },
    drain: (ws) => {
      ws.getUserData().credits?.drained();
    },
    close: (ws, code, message) => {
      sockets.delete(ws);
      recheck.relayClosed();
      const d = ws.getUserData();
      d.open = false;
      d.events?.end(101);
      if (d.relay) {
        d.relay.post({ t: 'ws-close', code, reason: Buffer.from(message).toString('utf8') });
        // If the upstream does not finish the close handshake, the worker gives up on its own timer.
      }
    },
  });
}

const CONNECT_FIELDS = new Set(['capability', 'path', 'credential', 'headers']);

/** The first client frame of /aivault/ws: `{capability, path, credential?, headers?}`; `targetUrl` is refused. */
export function parseConnectFrame(textFrame: string): WsConnect {
  let v: unknown;
  try {
    v = JSON.parse(textFrame);
  } catch {
    throw new AivaultError('invalid_request', 'the first frame must be a JSON object {capability, path}');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new AivaultError('invalid_request', 'the first frame must be a JSON object {capability, path}');
  }
  const o = v as Record<string, unknown>;
  if ('targetUrl' in o || 'url' in o) {
    throw new AivaultError(
      'policy_violation',
      'targetUrl is not allowed: the upstream comes from capability policy',
    );
  }
  for (const k of Object.keys(o)) {
    if (!CONNECT_FIELDS.has(k)) throw new AivaultError('invalid_request', `unknown connect field ${k}`);
  }
  if (typeof o.capability !== 'string' || o.capability === '') {
    throw new AivaultError('invalid_request', 'connect frame needs a capability');
  }
  if (typeof o.path !== 'string' || !o.path.startsWith('/')) {
    throw new AivaultError('invalid_request', 'connect frame needs a path starting with /');
  }
  if (o.credential !== undefined && typeof o.credential !== 'string') {
    throw new AivaultError('invalid_request', 'credential must be a string');
  }
  let headers: [string, string][] | undefined;
  if (o.headers !== undefined) {
    if (
      !Array.isArray(o.headers) ||
      !o.headers.every((h) => Array.isArray(h) && h.length === 2 && h.every((x) => typeof x === 'string'))
    ) {
      throw new AivaultError('invalid_request', 'headers must be a list of [name, value] pairs');
    }
    headers = o.headers as [string, string][];
  }
  return {
    capability: o.capability,
    path: o.path,
    ...(typeof o.credential === 'string' ? { credential: o.credential } : {}),
    ...(headers ? { headers } : {}),
  };
}

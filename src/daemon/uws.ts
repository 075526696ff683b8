/**
 * The only import of uWebSockets.js (installed as the unofficial build @trufflesuite/uws-js-unofficial).
 * Swap point for the official build: everything else imports these re-exports.
 */
import { createRequire } from 'node:module';
import type * as Uws from 'uWebSockets.js';

const uws = createRequire(import.meta.url)('uWebSockets.js') as typeof Uws;

export const App = uws.App;
export const closeListenSocket = uws.us_listen_socket_close;
/** The port a TCP listen socket is bound to (for `--http host:0`). */
export const localPort = (s: Uws.us_listen_socket): number =>
  uws.us_socket_local_port(s as unknown as Uws.us_socket);
export type { HttpResponse, TemplatedApp, WebSocket, us_listen_socket as ListenSocket } from 'uWebSockets.js';

/**
 * Largest WebSocket frame payload we hand to uWS in one call. The unofficial build (uWS v20.30) has the
 * bug fixed upstream in uNetworking/uWebSockets#1662: a send of >= 16 KiB that takes the uncorked
 * "long message" shortcut LOSES its payload when the frame header itself hits backpressure, corrupting the
 * stream. Messages below 16 KiB never take that path, so larger messages are sent as a fragmented
 * WebSocket message (the client reassembles one message; the msgpack framing is unchanged).
 * With the official, fixed build this can be raised to Infinity.
 */
const MAX_FRAGMENT = 16 * 1024 - 64;

/** Send one binary message, fragmenting it below the buggy threshold. Returns true if nothing was dropped. */
export function sendBinary<T>(ws: Uws.WebSocket<T>, bytes: Uint8Array): boolean {
  if (bytes.byteLength <= MAX_FRAGMENT) return ws.send(bytes, true, false) !== 2;
  let ok = true;
  ws.cork(() => {
    const last = bytes.byteLength - MAX_FRAGMENT;
    ok = ws.sendFirstFragment(bytes.subarray(0, MAX_FRAGMENT), true, false) && ok;
    let off = MAX_FRAGMENT;
    for (; off < last; off += MAX_FRAGMENT)
      ok = ws.sendFragment(bytes.subarray(off, off + MAX_FRAGMENT), false) && ok;
    ok = ws.sendLastFragment(bytes.subarray(off), false) && ok;
  });
  return ok;
}

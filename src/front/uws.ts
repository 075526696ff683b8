/**
 * The only import of uWebSockets.js (installed as the unofficial build @trufflesuite/uws-js-unofficial).
 * Swap point for the official build: everything else imports these re-exports.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type * as Uws from 'uWebSockets.js';
import { AivaultError } from '../core/errors.js';

const require = createRequire(import.meta.url);

/**
 * Load the native uWS binary itself, not the package entry. The entry silently swaps in a pure-Node
 * fallback (built on a pinned ws@8.13.0, which carries GHSA-3h5v-q93c-6h6q) whenever UWS_USE_FALLBACK is
 * set in the environment or the binary fails to load — a different, slower server with different limits
 * than the one we test and benchmark, chosen by an env var. We refuse to start on it instead.
 * The unofficial build ships binaries under binaries/, the official one at the package root.
 */
export function nativeUwsPath(): string {
  const name = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  const dir = dirname(require.resolve('uWebSockets.js/package.json'));
  const found = [join(dir, 'binaries', name), join(dir, name)].find((p) => existsSync(p));
  if (!found) {
    throw new AivaultError(
      'internal',
      `uWebSockets.js has no native binary for ${process.platform}-${process.arch} (Node ABI ${process.versions.modules}); aivaultd does not run on its pure-Node fallback`,
    );
  }
  return found;
}

let loaded: typeof Uws | undefined;
/** Loaded on first use, so a missing binary is a clean start-up error of the daemon, not an import crash. */
function uws(): typeof Uws {
  return (loaded ??= require(nativeUwsPath()) as typeof Uws);
}

// Never pass `undefined` on: the native App() aborts the process (v8 ToLocalChecked) on an explicit
// undefined options argument.
export const App = (options?: Uws.AppOptions): Uws.TemplatedApp =>
  options === undefined ? uws().App() : uws().App(options);
export const closeListenSocket = (s: Uws.us_listen_socket): void => uws().us_listen_socket_close(s);
/** The port a TCP listen socket is bound to (for `--http host:0`). */
export const localPort = (s: Uws.us_listen_socket): number =>
  uws().us_socket_local_port(s as unknown as Uws.us_socket);
export type {
  HttpRequest,
  HttpResponse,
  TemplatedApp,
  WebSocket,
  us_listen_socket as ListenSocket,
} from 'uWebSockets.js';

/**
 * Largest WebSocket frame payload we hand to uWS in one call. The unofficial build (uWS v20.30) has the
 * bug fixed upstream in uNetworking/uWebSockets#1662: a send of >= 16 KiB that takes the uncorked
 * "long message" shortcut LOSES its payload when the frame header itself hits backpressure, corrupting the
 * stream. Messages below 16 KiB never take that path, so larger messages are sent as a fragmented
 * WebSocket message (the client reassembles one message; the msgpack framing is unchanged).
 * With the official, fixed build this can be raised to Infinity.
 */
const MAX_FRAGMENT = 16 * 1024 - 64;

/**
 * Send one message (binary unless `binary` is false), fragmenting it below the buggy threshold. Returns
 * true if nothing was dropped. Text may be split inside a UTF-8 sequence: receivers validate the
 * reassembled message (RFC 6455 §5.6).
 */
export function sendMessage<T>(ws: Uws.WebSocket<T>, bytes: Uint8Array, binary = true): boolean {
  if (bytes.byteLength <= MAX_FRAGMENT) return ws.send(bytes, binary, false) !== 2;
  let ok = true;
  ws.cork(() => {
    const last = bytes.byteLength - MAX_FRAGMENT;
    ok = ws.sendFirstFragment(bytes.subarray(0, MAX_FRAGMENT), binary, false) && ok;
    let off = MAX_FRAGMENT;
    for (; off < last; off += MAX_FRAGMENT)
      ok = ws.sendFragment(bytes.subarray(off, off + MAX_FRAGMENT), false) && ok;
    ok = ws.sendLastFragment(bytes.subarray(off), false) && ok;
  });
  return ok;
}

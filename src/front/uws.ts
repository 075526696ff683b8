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
 * A WebSocket message: its bytes, or the parts whose concatenation they are (sent as fragments of one
 * message, so a large body part is never copied into a joined buffer first).
 */
export type Message = Uint8Array | readonly Uint8Array[];

/** A message's length in bytes. */
export function messageBytes(message: Message): number {
  if (message instanceof Uint8Array) return message.byteLength;
  let total = 0;
  for (const part of message) total += part.byteLength;
  return total;
}

/**
 * Send one message (binary unless `binary` is false), fragmenting it below the buggy threshold. Returns
 * true if nothing was dropped. Text may be split inside a UTF-8 sequence: receivers validate the
 * reassembled message (RFC 6455 §5.6).
 */
export function sendMessage<T>(ws: Uws.WebSocket<T>, message: Message, binary = true): boolean {
  if (message instanceof Uint8Array) {
    if (message.byteLength <= MAX_FRAGMENT) return ws.send(message, binary, false) !== 2;
    return sendFragments(ws, [message], binary);
  }
  const total = messageBytes(message);
  if (total <= MAX_FRAGMENT) return ws.send(Buffer.concat(message, total), binary, false) !== 2;
  return sendFragments(ws, message, binary);
}

/** One message from `parts`, as fragments of at most MAX_FRAGMENT bytes cut from each part (no copy). */
function sendFragments<T>(ws: Uws.WebSocket<T>, parts: readonly Uint8Array[], binary: boolean): boolean {
  const pieces: Uint8Array[] = [];
  for (const part of parts) {
    for (let off = 0; off < part.byteLength; off += MAX_FRAGMENT) {
      pieces.push(part.subarray(off, Math.min(part.byteLength, off + MAX_FRAGMENT)));
    }
  }
  let ok = true;
  ws.cork(() => {
    const last = pieces.length - 1;
    ok = ws.sendFirstFragment(pieces[0] as Uint8Array, binary, false) && ok;
    for (let i = 1; i < last; i++) ok = ws.sendFragment(pieces[i] as Uint8Array, false) && ok;
    ok = ws.sendLastFragment(pieces[last] as Uint8Array, false) && ok;
  });
  return ok;
}

/**
 * The only import of uWebSockets.js (installed as the unofficial build @trufflesuite/uws-js-unofficial).
 * Swap point for the official build: everything else imports these re-exports.
 */
import { createRequire } from 'node:module';
import type * as Uws from 'uWebSockets.js';

const uws = createRequire(import.meta.url)('uWebSockets.js') as typeof Uws;

export const App = uws.App;
export const closeListenSocket = uws.us_listen_socket_close;
export type { TemplatedApp, WebSocket, us_listen_socket as ListenSocket } from 'uWebSockets.js';

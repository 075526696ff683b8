/**
 * Is something accepting connections on this unix socket? Connects and hangs up at once, sending nothing
 * (safe to point at a socket we do not trust yet). Used by the daemon before it replaces a stale socket
 * and by the CLI to see whether a daemon serves a vault.
 */
import { connect } from 'node:net';

export function isListening(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

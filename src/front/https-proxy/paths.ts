/**
 * Where the HTTPS proxy's CA lives in a vault (no I/O; imported by the daemon and the CLI, so it must not
 * pull in node-forge).
 */
import { join } from 'node:path';

export const CA_DIR = 'ca';
export const CA_CERT_FILE = 'aivault-ca.pem';
export const CA_KEY_FILE = 'aivault-ca.key.sealed';

/** The vault CA's public cert: what clients trust (`aivault ca path`). */
export function caCertPath(vaultDir: string): string {
  return join(vaultDir, CA_DIR, CA_CERT_FILE);
}

/** Next to the daemon socket: where `aivault run` finds the proxy (checked with its /aivault/health). */
export const HTTPS_PROXY_INFO_FILE = 'aivaultd.https-proxy.json';

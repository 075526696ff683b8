/**
 * mtls: hands the transport a client certificate and key for mutual TLS. No header or URL changes.
 * Secret shape: a JSON object `{"cert": PEM, "key": PEM, "ca"?: PEM}` (aliases `certPem`/`cert_pem`,
 * `keyPem`/`key_pem`, `caPem`/`ca_pem`). Both must parse and the key must match the certificate, else the
 * request fails closed. Validated pairs are remembered by SHA-256 digest only (never the PEM) to skip re-parsing.
 */
import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import { fail, ok, type Result } from '../../core/errors.js';
import type { AuthStrategy, TlsClientAuth } from './strategy.js';

const CACHE_LIMIT = 32;

function validate(cert: string, key: string, ca: string | undefined): Result<true> {
  try {
    const x509 = new X509Certificate(cert);
    const privateKey = createPrivateKey(key);
    if (!x509.checkPrivateKey(privateKey)) {
      return fail('auth_failed', 'mtls client key does not match the client certificate');
    }
    if (ca !== undefined) new X509Certificate(ca);
    return ok(true);
  } catch {
    return fail('auth_failed', 'mtls client certificate, key or CA is not valid PEM');
  }
}

export const mtlsStrategy = {
  type: 'mtls',
  create(spec) {
    if (typeof spec !== 'object' || spec === null || Object.keys(spec).length !== 0) {
      return fail('auth_failed', 'mtls takes no options');
    }
    const validated = new Set<string>();
    return ok(async (_input, secrets) => {
      const cert = secrets.first('cert', 'certPem', 'cert_pem');
      const key = secrets.first('key', 'keyPem', 'key_pem');
      const ca = secrets.first('ca', 'caPem', 'ca_pem');
      if (cert === undefined || key === undefined) {
        return fail('auth_failed', 'mtls secret must be a JSON object with cert and key (PEM)');
      }
      const digest = createHash('sha256')
        .update(cert)
        .update('\0')
        .update(key)
        .update('\0')
        .update(ca ?? '')
        .digest('hex');
      if (!validated.has(digest)) {
        const checked = validate(cert, key, ca);
        if (!checked.ok) return checked;
        if (validated.size >= CACHE_LIMIT) validated.clear();
        validated.add(digest);
      }
      const tls: TlsClientAuth = ca === undefined ? { cert, key } : { cert, key, ca };
      return ok({ setHeaders: [], appendQuery: [], tls, urlSecrets: [] });
    });
  },
  headerNames: () => [],
  queryNames: () => [],
} satisfies AuthStrategy<'mtls'>;

/**
 * aws_sigv4: AWS Signature Version 4 via the official @smithy/signature-v4 signer (the AWS SDK's own).
 * Signs method, host, path, query, the selected headers and the payload hash; sets `authorization`,
 * `x-amz-date`, `x-amz-content-sha256` and, with a session token, `x-amz-security-token`.
 *
 * Secret shape: JSON `{"access_key_id", "secret_access_key", "session_token"?}` (camelCase `accessKeyId`,
 * `secretAccessKey`, `sessionToken` also accepted). Region/service come from the spec; credential params
 * `region` / `service` override them.
 *
 * Signed headers: `host`, `content-type`, `content-md5` and every caller `x-amz-*` header (e.g. `x-amz-target`);
 * never headers the transport may rewrite. Caller-supplied `x-amz-date`, `x-amz-security-token` and
 * `x-amz-content-sha256` are ignored (they are auth-class). Path: S3 signs the wire path as-is; every other
 * service gets the SigV4 double encoding (the signer's `uriEscapePath`). Body `undefined` (streamed) signs
 * `UNSIGNED-PAYLOAD`, which only some services (S3) accept.
 * The signer keeps a small module-level cache of derived (per day/region/service) signing keys; it is
 * emptied 5 minutes after the last signature (SIGNING_KEY_IDLE_MS).
 *
 * The signer is imported on the first signature, not with this module: every request worker loads the auth
 * strategies, and @smithy's code (~300 KB of source text kept in each worker's heap) is dead weight in a
 * daemon that serves no AWS capability (issue 12: idle RSS).
 */
import { createHash, createHmac, type BinaryLike, type Hash, type Hmac } from 'node:crypto';
import type { SignatureV4 as SignatureV4Class } from '@smithy/signature-v4';
import { fail, ok, type Result } from '../../core/errors.js';
import type { AuthStrategy, HeaderPair } from './strategy.js';
import { parseRawQuery } from './template.js';

export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
const GENERATED = ['authorization', 'x-amz-date', 'x-amz-content-sha256', 'x-amz-security-token'] as const;
const SIGNED_PLAIN_HEADERS: ReadonlySet<string> = new Set(['content-type', 'content-md5']);
const NAME = /^[a-z0-9-]{1,64}$/;

/** node:crypto SHA-256 in the signer's Checksum shape (keyed = HMAC). */
export class NodeSha256 {
  readonly #secret: BinaryLike | undefined;
  #hash: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#secret =
      secret === undefined || typeof secret === 'string'
        ? secret
        : secret instanceof ArrayBuffer
          ? new Uint8Array(secret)
          : new Uint8Array(secret.buffer, secret.byteOffset, secret.byteLength);
    this.#hash = this.#fresh();
  }
  #fresh(): Hash | Hmac {
    return this.#secret === undefined ? createHash('sha256') : createHmac('sha256', this.#secret);
  }
  update(data: Uint8Array | string): void {
    this.#hash.update(data);
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.#hash.digest());
  }
  reset(): void {
    this.#hash = this.#fresh();
  }
}

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

export interface AwsSignRequest {
  readonly method: string;
  readonly host: string;
  readonly path: string;
  /** Raw query, no `?`. */
  readonly query: string;
  readonly headers: readonly HeaderPair[];
  readonly body: Uint8Array | undefined;
}

export interface AwsSignOptions {
  readonly region: string;
  readonly service: string;
  readonly date: Date;
  /** Sign every given header (the AWS test-suite mode). Default: host, content-type, content-md5, x-amz-*. */
  readonly signAllHeaders?: boolean;
  /** Add/sign `x-amz-content-sha256` (default true). */
  readonly applyChecksum?: boolean;
  /** Default: true unless the service is S3. */
  readonly uriEscapePath?: boolean;
}

interface SignerModule {
  readonly SignatureV4: typeof SignatureV4Class;
  /** Empties the package's module-level cache of derived signing keys. */
  readonly clearCredentialCache: () => void;
}

let signerModule: Promise<SignerModule> | undefined;
/** The loaded package's cache reset (undefined until the first signature loaded the package). */
let clearLoadedCache: (() => void) | undefined;
/** Node's ESM loader gives the CommonJS package's named exports; the CLI's esbuild chunk only `default`. */
const loadSigner = (): Promise<SignerModule> =>
  (signerModule ??= import('@smithy/signature-v4').then((m) => {
    const mod = m.SignatureV4 ? m : ((m as { default?: typeof m }).default ?? m);
    clearLoadedCache = mod.clearCredentialCache;
    return { SignatureV4: mod.SignatureV4, clearCredentialCache: mod.clearCredentialCache };
  }));

/**
 * The signer caches the keys it derives from a secret key (one per day, region and service; each signs for
 * its scope and does not reveal the secret) for the process's life. Like the other values a request worker
 * keeps (docs/security.md), they go 5 minutes after the last signature: an unref'd timer, pushed back by
 * every signature, empties that cache.
 */
export const SIGNING_KEY_IDLE_MS = 5 * 60 * 1000;
let signingKeysTimer: NodeJS.Timeout | undefined;

/** Drop the derived signing keys now (the vault was locked). */
export function forgetSigningKeys(): void {
  if (signingKeysTimer) clearTimeout(signingKeysTimer);
  signingKeysTimer = undefined;
  clearLoadedCache?.();
}

function keepSigningKeysUntilIdle(clear: () => void): void {
  if (signingKeysTimer) {
    signingKeysTimer.refresh();
    return;
  }
  signingKeysTimer = setTimeout(() => {
    signingKeysTimer = undefined;
    clear();
  }, SIGNING_KEY_IDLE_MS);
  signingKeysTimer.unref();
}

function isSignable(name: string): boolean {
  return SIGNED_PLAIN_HEADERS.has(name) || (name.startsWith('x-amz-') && !GENERATED.includes(name as never));
}

/** Sign one request; returns the headers to set (authorization, x-amz-*), never `host`. */
export async function signAwsRequest(
  request: AwsSignRequest,
  credentials: AwsCredentials,
  options: AwsSignOptions,
): Promise<Result<HeaderPair[]>> {
  const query = parseRawQuery(request.query);
  if (query === undefined) return fail('auth_failed', 'aws_sigv4: request query has a malformed escape');
  const queryBag: Record<string, string | string[]> = Object.create(null) as Record<
    string,
    string | string[]
  >;
  for (const [name, value] of query) {
    const seen = queryBag[name];
    if (seen === undefined) queryBag[name] = value;
    else if (Array.isArray(seen)) seen.push(value);
    else queryBag[name] = [seen, value];
  }
  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  headers.host = request.host;
  for (const [rawName, value] of request.headers) {
    const name = rawName.toLowerCase();
    if (name === 'host' || name === '__proto__') continue;
    if (options.signAllHeaders !== true && !isSignable(name)) continue;
    const seen = headers[name];
    headers[name] = seen === undefined ? value : `${seen},${value}`;
  }
  if (request.body === undefined) headers['x-amz-content-sha256'] = UNSIGNED_PAYLOAD;
  const service = options.service;
  const { SignatureV4, clearCredentialCache } = await loadSigner();
  keepSigningKeysUntilIdle(clearCredentialCache);
  const signer = new SignatureV4({
    credentials: {
      accessKeyId: credentials.accessKeyId,
      secretAccessKey: credentials.secretAccessKey,
      ...(credentials.sessionToken === undefined ? {} : { sessionToken: credentials.sessionToken }),
    },
    region: options.region,
    service,
    sha256: NodeSha256,
    uriEscapePath: options.uriEscapePath ?? !service.startsWith('s3'),
    applyChecksum: options.applyChecksum ?? true,
  });
  let signed: { headers: Record<string, string | undefined> };
  try {
    signed = await signer.sign(
      {
        method: request.method.toUpperCase(),
        protocol: 'https:',
        hostname: request.host,
        path: request.path,
        query: queryBag,
        headers,
        ...(request.body === undefined ? {} : { body: request.body }),
      },
      { signingDate: options.date },
    );
  } catch {
    return fail('auth_failed', 'aws_sigv4 signing failed');
  }
  const out: HeaderPair[] = [];
  for (const name of GENERATED) {
    const value = signed.headers[name];
    if (typeof value === 'string') out.push([name, value]);
  }
  return ok(out);
}

export const awsSigV4Strategy = {
  type: 'aws_sigv4',
  create(spec, params, env) {
    const region = params?.region ?? spec?.region;
    const service = params?.service ?? spec?.service;
    if (typeof region !== 'string' || !NAME.test(region)) {
      return fail('auth_failed', 'aws_sigv4.region must be a lower-case AWS region name');
    }
    if (typeof service !== 'string' || !NAME.test(service)) {
      return fail('auth_failed', 'aws_sigv4.service must be a lower-case AWS service name');
    }
    const now = env?.now ?? Date.now;
    return ok(async (input, secrets) => {
      const accessKeyId = secrets.first('access_key_id', 'accessKeyId');
      const secretAccessKey = secrets.first('secret_access_key', 'secretAccessKey');
      const sessionToken = secrets.first('session_token', 'sessionToken');
      if (!accessKeyId || !secretAccessKey) {
        return fail('auth_failed', 'aws_sigv4 secret must be JSON with access_key_id and secret_access_key');
      }
      if (/[\s\u0000-\u001f\u007f]/.test(accessKeyId) || (sessionToken && /[\r\n\0]/.test(sessionToken))) {
        return fail('auth_failed', 'aws_sigv4 credentials contain a control character');
      }
      const creds: AwsCredentials = sessionToken
        ? { accessKeyId, secretAccessKey, sessionToken }
        : { accessKeyId, secretAccessKey };
      const headers = await signAwsRequest(input, creds, { region, service, date: new Date(now()) });
      if (!headers.ok) return headers;
      return ok({ setHeaders: headers.value, appendQuery: [], urlSecrets: [] });
    });
  },
  headerNames: () => GENERATED,
  queryNames: () => [],
} satisfies AuthStrategy<'aws_sigv4'>;

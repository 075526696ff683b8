/**
 * The per-vault local CA of the HTTPS proxy (daemon main thread) and the leaf certificates it issues.
 *
 * - Created on first use: `<vault>/ca/aivault-ca.pem` (public cert, what clients trust; `aivault ca path`)
 *   and `<vault>/ca/aivault-ca.key.sealed` (the private key, AES-256-GCM sealed; never in clear on disk).
 * - The sealing key is HKDF-SHA256 of the audit sealing subkey (itself a crypto_kdf subkey of the KEK, the
 *   only key material the main thread may hold; see stores/vault/aead.ts deriveAuditKey) with a CA-specific
 *   label, so no new crypto-worker operation is needed and the KEK never leaves the crypto worker. A KEK
 *   rotation changes it: the CA is then re-created (clients get the new cert from the next `aivault run`).
 * - Leaf certs: one RSA key per daemon process, a cert per host valid for 24 h, kept in memory only.
 *
 * node-forge builds the X.509 certificates (Node's crypto can parse but not issue them); key pairs come
 * from Node's native generator (forge's own RSA keygen is pure JS and slow).
 */
import { createCipheriv, createDecipheriv, generateKeyPair, hkdfSync, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { promises as fsp } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { createRequire } from 'node:module';
import type * as ForgeNs from 'node-forge';
import { AivaultError } from '../../core/errors.js';
import { writeRunFile } from '../run-dir.js';
import { CA_DIR, CA_KEY_FILE, caCertPath } from './paths.js';

// node-forge is CommonJS without named ESM exports (same pattern as ipaddr.js in http-passthrough.ts).
const forge = createRequire(import.meta.url)('node-forge') as typeof ForgeNs;
const SEAL_INFO = 'aivault/https-proxy-ca-key/v1';
const LEAF_LIFETIME_MS = 24 * 60 * 60 * 1000;
const CA_LIFETIME_MS = 5 * 365 * 24 * 60 * 60 * 1000;
const MAX_LEAVES = 1024;

interface SealedKey {
  v: 1;
  alg: 'aes-256-gcm';
  nonce: string;
  tag: string;
  ct: string;
}

function sealingKey(auditKey: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', auditKey, Buffer.alloc(0), SEAL_INFO, 32));
}

/** Seal a PEM private key; the cert PEM is the AAD (a key only opens with the cert it was made for). */
export function sealCaKey(auditKey: Uint8Array, keyPem: string, certPem: string): SealedKey {
  const key = sealingKey(auditKey);
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(certPem, 'utf8'));
  const ct = Buffer.concat([cipher.update(keyPem, 'utf8'), cipher.final()]);
  key.fill(0);
  return {
    v: 1,
    alg: 'aes-256-gcm',
    nonce: nonce.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
    ct: ct.toString('base64'),
  };
}

/** The PEM key, or undefined when it does not open (other KEK, other cert, tampered). */
export function openCaKey(auditKey: Uint8Array, sealed: SealedKey, certPem: string): string | undefined {
  const key = sealingKey(auditKey);
  try {
    const d = createDecipheriv('aes-256-gcm', key, Buffer.from(sealed.nonce, 'base64'));
    d.setAAD(Buffer.from(certPem, 'utf8'));
    d.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    return Buffer.concat([d.update(Buffer.from(sealed.ct, 'base64')), d.final()]).toString('utf8');
  } catch {
    return undefined;
  } finally {
    key.fill(0);
  }
}

function serial(): string {
  // Positive, 16 random bytes (RFC 5280: at most 20 octets, non-negative).
  const b = randomBytes(16);
  b[0] = (b[0] as number) & 0x7f;
  return b.toString('hex');
}

interface KeyPair {
  readonly publicKey: ForgeNs.pki.rsa.PublicKey;
  readonly privateKey: ForgeNs.pki.rsa.PrivateKey;
  readonly pem: string;
}

const generateKeyPairAsync = promisify(generateKeyPair);

/** RSA-2048 off the main thread (libuv pool): a key takes ~0.5 s of CPU, the event loop must not wait. */
async function rsaPair(): Promise<KeyPair> {
  const { publicKey, privateKey } = await generateKeyPairAsync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return {
    publicKey: forge.pki.publicKeyFromPem(publicKey) as ForgeNs.pki.rsa.PublicKey,
    privateKey: forge.pki.privateKeyFromPem(privateKey) as ForgeNs.pki.rsa.PrivateKey,
    pem: privateKey,
  };
}

/** A new self-signed CA (pure apart from randomness). */
export async function createCa(
  vaultTag: string,
  nowMs = Date.now(),
): Promise<{ certPem: string; keyPem: string }> {
  const pair = await rsaPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = pair.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(nowMs - 60 * 60 * 1000);
  cert.validity.notAfter = new Date(nowMs + CA_LIFETIME_MS);
  const subject = [
    { name: 'commonName', value: `aivault local CA ${vaultTag.slice(0, 12)}` },
    { name: 'organizationName', value: 'aivault' },
  ];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, pathLenConstraint: 0, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  cert.sign(pair.privateKey, forge.md.sha256.create());
  return { certPem: forge.pki.certificateToPem(cert), keyPem: pair.pem };
}

interface Leaf {
  readonly context: SecureContext;
  readonly expiresAtMs: number;
}

/** Issues (and caches) leaf certs for hosts, signed by a loaded CA. */
export class LeafIssuer {
  private readonly ca: ForgeNs.pki.Certificate;
  private readonly caKey: ForgeNs.pki.rsa.PrivateKey;
  private readonly leaves = new Map<string, Leaf>();

  private constructor(
    readonly certPem: string,
    keyPem: string,
    /** One key for every leaf of this process (made once, off the main thread). */
    private readonly leafKey: KeyPair,
    private readonly now: () => number,
  ) {
    this.ca = forge.pki.certificateFromPem(certPem);
    this.caKey = forge.pki.privateKeyFromPem(keyPem) as ForgeNs.pki.rsa.PrivateKey;
  }

  static async create(certPem: string, keyPem: string, now: () => number = Date.now): Promise<LeafIssuer> {
    return new LeafIssuer(certPem, keyPem, await rsaPair(), now);
  }

  /** A TLS server context for `host` (a DNS name or an IP), issued now or from the cache. */
  contextFor(host: string): SecureContext {
    const now = this.now();
    const cached = this.leaves.get(host);
    // Re-issue an hour before expiry so a client never sees a cert about to lapse.
    if (cached && cached.expiresAtMs - 60 * 60 * 1000 > now) return cached.context;
    const cert = forge.pki.createCertificate();
    cert.publicKey = this.leafKey.publicKey;
    cert.serialNumber = serial();
    cert.validity.notBefore = new Date(now - 60 * 60 * 1000);
    const expiresAtMs = now + LEAF_LIFETIME_MS;
    cert.validity.notAfter = new Date(expiresAtMs);
    cert.setSubject([{ name: 'commonName', value: host.slice(0, 64) }]);
    cert.setIssuer(this.ca.subject.attributes);
    const ip = isIP(host) !== 0;
    cert.setExtensions([
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [ip ? { type: 7, ip: host } : { type: 2, value: host }] },
      { name: 'subjectKeyIdentifier' },
      {
        name: 'authorityKeyIdentifier',
        keyIdentifier: this.ca.generateSubjectKeyIdentifier().getBytes(),
      },
    ]);
    cert.sign(this.caKey, forge.md.sha256.create());
    const context = createSecureContext({
      key: this.leafKey.pem,
      cert: forge.pki.certificateToPem(cert),
    });
    if (this.leaves.size >= MAX_LEAVES) this.leaves.clear();
    this.leaves.set(host, { context, expiresAtMs });
    return context;
  }
}

function isSealed(v: unknown): v is SealedKey {
  const s = v as Partial<SealedKey> | null;
  return (
    typeof s === 'object' &&
    s !== null &&
    s.v === 1 &&
    s.alg === 'aes-256-gcm' &&
    typeof s.nonce === 'string' &&
    typeof s.tag === 'string' &&
    typeof s.ct === 'string'
  );
}

/**
 * Load the vault's CA (creating it when absent or when its key no longer opens) → a leaf issuer.
 * `auditKey` rejects while the vault is locked: the proxy then answers 503 until it is unlocked.
 */
export async function loadOrCreateCa(
  vaultDir: string,
  vaultTag: string,
  auditKey: () => Promise<Uint8Array>,
  warn: (msg: string) => void,
): Promise<LeafIssuer> {
  const dir = join(vaultDir, CA_DIR);
  const certPath = caCertPath(vaultDir);
  const keyPath = join(dir, CA_KEY_FILE);
  let key: Uint8Array;
  try {
    key = await auditKey();
  } catch (err) {
    throw new AivaultError(
      'vault_unavailable',
      `the HTTPS proxy CA needs an unlocked vault (${(err as Error).message})`,
    );
  }
  try {
    const [certPem, sealedText] = await Promise.all([
      fsp.readFile(certPath, 'utf8').catch(() => undefined),
      fsp.readFile(keyPath, 'utf8').catch(() => undefined),
    ]);
    if (certPem !== undefined && sealedText !== undefined) {
      let sealed: unknown;
      try {
        sealed = JSON.parse(sealedText);
      } catch {
        sealed = undefined;
      }
      const keyPem = isSealed(sealed) ? openCaKey(key, sealed, certPem) : undefined;
      if (keyPem !== undefined) return LeafIssuer.create(certPem, keyPem);
      warn(`the HTTPS proxy CA key in ${dir} does not open with this vault's key: creating a new CA`);
    }
    const made = await createCa(vaultTag);
    await fsp.mkdir(dir, { recursive: true, mode: 0o700 });
    // Key first: a cert on disk always has its sealed key next to it.
    await writeRunFile(keyPath, `${JSON.stringify(sealCaKey(key, made.keyPem, made.certPem))}\n`);
    await writeRunFile(certPath, made.certPem);
    return LeafIssuer.create(made.certPem, made.keyPem);
  } finally {
    key.fill(0);
  }
}

/**
 * Throwaway test PKI made with the `openssl` CLI (Debian ships it) in a temp dir: a CA, a server cert for
 * localhost/127.0.0.1/api.openai.com/… and a client cert (for mTLS). Cached per process. Test-only.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCa {
  readonly dir: string;
  readonly caCertPath: string;
  readonly caCert: string;
  readonly serverCert: string;
  readonly serverKey: string;
  readonly clientCert: string;
  readonly clientKey: string;
}

export const TEST_HOSTS = [
  'localhost',
  'api.openai.com',
  'api.anthropic.com',
  'api.github.com',
  'upstream.test',
  'other.test',
  'rebind.test',
  '*.myshopify.com',
] as const;

let cached: TestCa | undefined;

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

function serverExt(hosts: readonly string[]): string {
  const san = [...hosts.map((h) => `DNS:${h}`), 'IP:127.0.0.1', 'IP:::1'].join(',');
  return `basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`;
}

/** `<name>.key` + `<name>.pem` (CN `cn`, extensions from `<name>.ext`) in `dir`, signed by the CA in `caDir`. */
function issue(dir: string, caDir: string, name: string, cn: string): void {
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.ec.key`], dir);
  openssl(['pkcs8', '-topk8', '-nocrypt', '-in', `${name}.ec.key`, '-out', `${name}.key`], dir);
  openssl(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${cn}`, '-out', `${name}.csr`], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      join(caDir, 'ca.pem'),
      '-CAkey',
      join(caDir, 'ca.key'),
      '-CAcreateserial',
      '-days',
      '2',
      '-sha256',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.pem`,
    ],
    dir,
  );
}

export function createTestCa(): TestCa {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'aivault-ca-'));
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
  openssl(
    [
      'req',
      '-x509',
      '-new',
      '-key',
      'ca.key',
      '-sha256',
      '-days',
      '2',
      '-subj',
      '/CN=aivault test CA',
      '-out',
      'ca.pem',
    ],
    dir,
  );
  writeFileSync(join(dir, 'server.ext'), serverExt(TEST_HOSTS));
  writeFileSync(
    join(dir, 'client.ext'),
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n',
  );
  issue(dir, dir, 'server', 'localhost');
  issue(dir, dir, 'client', 'aivault test client');
  const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
  cached = {
    dir,
    caCertPath: join(dir, 'ca.pem'),
    caCert: read('ca.pem'),
    serverCert: read('server.pem'),
    serverKey: read('server.key'),
    clientCert: read('client.pem'),
    clientKey: read('client.key'),
  };
  return cached;
}

/** A server cert + key (PEM) for `hosts` as well as TEST_HOSTS, signed by the test CA (for startHttpsUpstream). */
export function issueServerCert(hosts: readonly string[]): { cert: string; key: string } {
  const ca = createTestCa();
  const dir = mkdtempSync(join(tmpdir(), 'aivault-cert-'));
  writeFileSync(join(dir, 'server.ext'), serverExt([...new Set([...hosts, ...TEST_HOSTS])]));
  issue(dir, ca.dir, 'server', 'aivault test server');
  const read = (f: string): string => readFileSync(join(dir, f), 'utf8');
  const pem = { cert: read('server.pem'), key: read('server.key') };
  rmSync(dir, { recursive: true, force: true });
  return pem;
}

/**
 * The HTTPS proxy end to end through the COMPILED CLI and daemon (needs `npm run build`): `aivault run`
 * autostarts aivaultd with the proxy, and real, unchanged clients (curl, Python requests, Node fetch) reach
 * `https://api.openai.com` — resolved by the dev vault to the local HTTPS mock — through it. The mock gets
 * the real key; the child only ever has a proxy token and placeholder keys. Also: 403 for hosts without a
 * capability, 407 without a valid token, the placeholder cross-provider refusal, and the CA private key
 * never in clear under the vault dir.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import { connect, type AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isolatedEnv, registerSecret, runCli } from '../../support/run-cli.js';
import { stopDaemon } from '../../../src/cli/commands/daemon.js';
import { listTokens, mintProxyToken } from '../../../src/stores/tokens/tokens.js';
import { openCaKey } from '../../../src/front/https-proxy/ca.js';
import {
  caCertPath,
  CA_DIR,
  CA_KEY_FILE,
  HTTPS_PROXY_INFO_FILE,
} from '../../../src/front/https-proxy/paths.js';
import { readSecretRecord, toSecretInfo, toSecretMeta, vaultPaths } from '../../../src/stores/vault/index.js';
import { catalogPaths, createCapability, createCredential } from '../../../src/stores/catalog/index.js';
import { registry } from '../../../src/core/registry/index.js';
import { createTestCa, issueServerCert } from '../../support/test-ca.js';
import {
  ANTHROPIC_SECRET,
  ECHO_SECRET,
  OPENAI_SECRET,
  prepareVault,
  type PreparedVault,
} from '../http/http-fixture.js';

const SDK_SCRIPT = resolve('test/e2e/sdk/scripts/sdk-call.mjs');

const GIT_SECRET = 'ghp-git-Xy9-real-token-never-shown';
const GIT_SHA = 'a'.repeat(40);

let pv: PreparedVault;
let env: Record<string, string>;
let socket: string;
let git: { port: number; seen: { path: string; authorization?: string }[]; close(): Promise<void> };

/** git's smart-HTTP pkt-line framing. */
const pkt = (s: string): string => (s.length + 4).toString(16).padStart(4, '0') + s;

/** A minimal smart-HTTP git server on `git.test` (test CA cert) that wants Basic auth. */
async function startGitServer(): Promise<typeof git> {
  const { cert, key } = issueServerCert(['git.test']);
  const seen: { path: string; authorization?: string }[] = [];
  const server = createHttpsServer({ cert, key }, (req, res) => {
    const authorization = req.headers.authorization;
    seen.push({ path: req.url ?? '', ...(authorization ? { authorization } : {}) });
    const want = `Basic ${Buffer.from(`x-access-token:${GIT_SECRET}`).toString('base64')}`;
    if (authorization !== want) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="git"' });
      res.end();
      return;
    }
    if (req.url !== '/org/repo.git/info/refs?service=git-upload-pack') {
      res.writeHead(404);
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/x-git-upload-pack-advertisement' });
    res.end(
      pkt('# service=git-upload-pack\n') +
        '0000' +
        pkt(`${GIT_SHA} HEAD\0side-band-64k symref=HEAD:refs/heads/main\n`) +
        pkt(`${GIT_SHA} refs/heads/main\n`) +
        '0000',
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

beforeAll(async () => {
  pv = await prepareVault();
  for (const s of [OPENAI_SECRET, ANTHROPIC_SECRET, ECHO_SECRET, GIT_SECRET]) registerSecret(s);
  git = await startGitServer();
  // A git host credential with Basic auth: git over HTTPS gets the token injected by the proxy.
  const secret = await pv.vault.createSecret({
    name: 'GIT_TOKEN',
    value: GIT_SECRET,
    scope: { kind: 'global' },
  });
  const info = toSecretInfo(toSecretMeta(await readSecretRecord(vaultPaths(pv.config), secret.id)));
  const paths = catalogPaths(pv.config.vaultDir);
  await createCredential(
    paths,
    registry,
    {
      id: 'gitsrv',
      provider: 'gitsrv',
      secretRef: `vault:secret:${secret.id}`,
      auth: { basic: { username_template: 'x-access-token', password_template: '{{secret}}' } },
      hosts: ['git.test'],
    },
    { secrets: [info] },
  );
  await createCapability(
    paths,
    registry,
    { id: 'gitsrv/read', credentialId: 'gitsrv', methods: ['GET', 'POST'], pathPrefixes: ['/org/'] },
    { secrets: [info] },
  );
  socket = join(pv.home, 'run', 'aivaultd.sock');
  env = isolatedEnv(pv.config.vaultDir, {
    HOME: pv.home,
    AIVAULTD_SOCKET: socket,
    AIVAULTD_HTTP: '127.0.0.1:0',
    AIVAULTD_HTTPS_PROXY: '127.0.0.1:0',
    AIVAULTD_WORKERS: '1',
    AIVAULT_DEV_RESOLVE: `${pv.env.AIVAULT_DEV_RESOLVE},git.test=127.0.0.1:${git.port}`,
    AIVAULT_DEV_CA_CERT_PATH: pv.env.AIVAULT_DEV_CA_CERT_PATH,
    AIVAULT_DEV_HTTP1_ONLY: '1',
    OPENAI_API_KEY: OPENAI_SECRET, // the child must not inherit it
  });
}, 60_000);

afterAll(async () => {
  await stopDaemon(socket).catch(() => undefined);
  pv.vault.close();
  await pv.upstream.close();
  await git.close();
});

function proxyPort(): number {
  const info = JSON.parse(readFileSync(join(pv.home, 'run', HTTPS_PROXY_INFO_FILE), 'utf8')) as {
    port: number;
  };
  return info.port;
}

/** A raw CONNECT on the proxy: the status line, headers and body of its answer. */
function rawConnect(target: string, auth?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(proxyPort(), '127.0.0.1');
    let out = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      out += d;
      // A 200 leaves the tunnel open: the head is all we need.
      if (out.startsWith('HTTP/1.1 200')) s.destroy();
    });
    s.on('close', () => resolve(out));
    s.on('error', reject);
    s.write(
      `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth ? `Proxy-Authorization: ${auth}\r\n` : ''}\r\n`,
    );
  });
}

const basic = (user: string, pass: string): string =>
  `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

function hasPython(): boolean {
  try {
    execFileSync('python3', ['-c', 'import requests'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('aivault run with the HTTPS proxy', () => {
  it('curl reaches api.openai.com through the proxy; the mock gets the real key, curl the body', async () => {
    const before = pv.upstream.requests.length;
    const r = await runCli(
      [
        'run',
        '--',
        'sh',
        '-c',
        'curl -sS -H "Authorization: Bearer $OPENAI_API_KEY" -H "x-echo-headers: omit" https://api.openai.com/v1/models; echo; env',
      ],
      { env, timeoutMs: 60_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    const [body, ...envLines] = r.stdout.split('\n');
    expect(JSON.parse(body as string)).toMatchObject({ method: 'GET', path: '/v1/models' });
    const seen = pv.upstream.requests.slice(before);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.headers.authorization).toBe(`Bearer ${OPENAI_SECRET}`);
    // The child had a proxy URL with a token, the CA variables and a placeholder, never a key.
    const childEnv = Object.fromEntries(
      envLines
        .filter((l) => l.includes('='))
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
    );
    expect(childEnv.HTTPS_PROXY).toMatch(/^http:\/\/aivault:avp_[^@]+@127\.0\.0\.1:\d+$/);
    expect(childEnv.NO_PROXY).toBe('localhost,127.0.0.1,::1');
    expect(childEnv.OPENAI_API_KEY).toMatch(/^aivault-placeholder-openai-[0-9a-f]{32}$/);
    expect(childEnv.OPENAI_BASE_URL).toBeUndefined();
    expect(childEnv.NODE_USE_ENV_PROXY).toBe('1');
    expect(childEnv.NODE_OPTIONS).toContain('proxy-preload.js');
    for (const v of ['SSL_CERT_FILE', 'REQUESTS_CA_BUNDLE', 'CURL_CA_BUNDLE', 'GIT_SSL_CAINFO']) {
      expect(childEnv[v]).toMatch(/aivault-run-.*ca-bundle\.pem$/);
    }
    expect(childEnv.NODE_EXTRA_CA_CERTS).toBe(caCertPath(pv.config.vaultDir));
    expect(r.stdout).not.toContain(OPENAI_SECRET);
    // Token revoked at exit.
    expect((await listTokens(pv.config.vaultDir)).some((t) => t.kind === 'proxy')).toBe(false);
  }, 90_000);

  it.skipIf(!hasPython())(
    'Python requests goes through the proxy unchanged',
    async () => {
      const before = pv.upstream.requests.length;
      const script = [
        'import os, requests',
        "r = requests.post('https://api.openai.com/v1/chat/completions', json={'model': 'm', 'messages': []},",
        "                  headers={'Authorization': 'Bearer ' + os.environ['OPENAI_API_KEY']})",
        'print(r.status_code, r.json()["choices"][0]["message"]["content"])',
      ].join('\n');
      const r = await runCli(['run', '--', 'python3', '-c', script], { env, timeoutMs: 60_000 });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim()).toBe('200 Hello from the mock');
      const seen = pv.upstream.requests.slice(before);
      expect(seen.map((s) => s.headers.authorization)).toEqual([`Bearer ${OPENAI_SECRET}`]);
    },
    90_000,
  );

  it('the unchanged OpenAI and Anthropic SDKs (normal + streaming) work through the proxy', async () => {
    const before = pv.upstream.requests.length;
    const r = await runCli(['run', '--', process.execPath, SDK_SCRIPT, 'both'], { env, timeoutMs: 60_000 });
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop() as string) as {
      env: Record<string, string>;
      openai: { normal: string; streamed: string };
      anthropic: { normal: string; streamed: string };
    };
    expect(out.openai).toMatchObject({ normal: 'Hello from the mock', streamed: 'Hello from the mock' });
    expect(out.anthropic).toMatchObject({ normal: 'Hello from the mock', streamed: 'Hello from the mock' });
    expect(out.env.ANTHROPIC_API_KEY).toMatch(/^aivault-placeholder-anthropic-/);
    for (const secret of [OPENAI_SECRET, ANTHROPIC_SECRET, ECHO_SECRET]) {
      expect(JSON.stringify(out.env)).not.toContain(secret);
    }
    const seen = pv.upstream.requests.slice(before);
    expect(seen.filter((s) => s.headers.authorization === `Bearer ${OPENAI_SECRET}`)).toHaveLength(2);
    expect(seen.filter((s) => s.headers['x-api-key'] === ANTHROPIC_SECRET)).toHaveLength(2);
    expect(JSON.stringify(seen)).not.toContain('aivault-placeholder');
  }, 90_000);

  it("Node's built-in fetch goes through the proxy (preload on Node < 24)", async () => {
    const before = pv.upstream.requests.length;
    const r = await runCli(
      [
        'run',
        '--',
        process.execPath,
        '-e',
        "fetch('https://api.openai.com/v1/models', {headers: {'x-echo-headers': 'omit'}}).then(async (r) => console.log(r.status, (await r.json()).path))",
      ],
      { env, timeoutMs: 60_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('200 /v1/models');
    expect(pv.upstream.requests.slice(before).map((s) => s.headers.authorization)).toEqual([
      `Bearer ${OPENAI_SECRET}`,
    ]);
  }, 90_000);

  it('large bodies through the proxy at once arrive whole and in order (pooled chunk buffers)', async () => {
    // Chunks of 16–80 KiB reach the proxy's TLS socket in buffers that go back to the worker from Node's
    // write callback (src/core/threads/chunk-buffers.ts); one given back before Node had written it would
    // put other bytes into a body. Three curls at once share the worker's pool; each body is checked
    // byte for byte against the upstream's pattern (byte i is i mod 251).
    const size = 16 * 1024 * 1024;
    const check =
      'let i=0,bad=0;process.stdin.on("data",(c)=>{for(const b of c){if(b!==i%251)bad++;i++}}).on("end",()=>console.log(i,bad))';
    const one = `curl -sS -X POST -H 'content-type: application/json' -d '{}' 'https://api.openai.com/v1/chat/completions/large?bytes=${size}&pattern=1' | ${JSON.stringify(process.execPath)} -e '${check}'`;
    const r = await runCli(['run', '--', 'sh', '-c', `(${one}) & (${one}) & (${one}); wait`], {
      env,
      timeoutMs: 90_000,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([`${size} 0`, `${size} 0`, `${size} 0`]);
  }, 120_000);

  it('a request no capability allows gets our 403 JSON error', async () => {
    const before = pv.upstream.requests.length;
    const r = await runCli(
      ['run', '--', 'curl', '-sS', '-w', '\n%{http_code}', 'https://api.openai.com/v2/not-a-capability'],
      { env, timeoutMs: 60_000 },
    );
    const [body, status] = r.stdout.split('\n');
    expect(status).toBe('403');
    expect(JSON.parse(body as string)).toMatchObject({ error: 'policy_violation' });
    expect(pv.upstream.requests.length).toBe(before);
  }, 60_000);

  it('a host without a capability is refused with 403 naming the host and --tunnel-host', async () => {
    const r = await runCli(
      ['run', '--', 'curl', '-sS', '-o', '/dev/null', '-w', '%{http_connect}', 'https://example.com/'],
      { env, timeoutMs: 60_000 },
    );
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('403');
    const { token } = await mintProxyToken(pv.config.vaultDir, { capabilities: ['openai/*'] });
    const answer = await rawConnect('example.com:443', basic('aivault', token));
    expect(answer).toMatch(/^HTTP\/1\.1 403 /);
    expect(answer).toContain('example.com');
    expect(answer).toContain('aivault run --tunnel-host example.com');
    // A host served only by a capability the token does not grant is refused the same way.
    expect(await rawConnect('api.anthropic.com:443', basic('aivault', token))).toMatch(/^HTTP\/1\.1 403 /);
    expect(await rawConnect('api.openai.com:443', basic('aivault', token))).toMatch(/^HTTP\/1\.1 200 /);
  }, 60_000);

  it('a missing or wrong proxy token gets 407 with Proxy-Authenticate', async () => {
    const none = await rawConnect('api.openai.com:443');
    expect(none).toMatch(/^HTTP\/1\.1 407 /);
    expect(none).toMatch(/\r\nProxy-Authenticate: Basic realm="aivault"\r\n/);
    const wrong = await rawConnect('api.openai.com:443', basic('aivault', 'avp_not-a-real-token'));
    expect(wrong).toMatch(/^HTTP\/1\.1 407 /);
    const garbage = await rawConnect('api.openai.com:443', 'Bearer something');
    expect(garbage).toMatch(/^HTTP\/1\.1 407 /);
    // curl with a wrong token in the proxy URL sees the 407 as the CONNECT status.
    const r = await runCli(
      [
        'run',
        '--',
        'sh',
        '-c',
        `curl -sS -o /dev/null -w '%{http_connect}' -x http://aivault:avp_wrong@127.0.0.1:${proxyPort()} https://api.openai.com/v1/models`,
      ],
      { env, timeoutMs: 60_000 },
    );
    expect(r.stdout).toBe('407');
  }, 60_000);

  it('a placeholder sent to another provider is refused and audited, never substituted', async () => {
    const before = pv.upstream.requests.length;
    const r = await runCli(
      [
        'run',
        '--',
        'sh',
        '-c',
        'curl -sS -w "\\n%{http_code}" -H "x-api-key: $OPENAI_API_KEY" -H "content-type: application/json" -d "{}" https://api.anthropic.com/v1/messages',
      ],
      { env, timeoutMs: 60_000 },
    );
    const [body, status] = r.stdout.split('\n');
    expect(status).toBe('403');
    expect(JSON.parse(body as string)).toMatchObject({ error: 'policy_violation' });
    expect(body).toContain('placeholder key for openai');
    expect(pv.upstream.requests.length).toBe(before);
    const auditDir = vaultPaths(pv.config).auditDir;
    const lines = readdirSync(auditDir)
      .flatMap((f) => readFileSync(join(auditDir, f), 'utf8').split('\n'))
      .filter((l) => l.includes('placeholder for another provider'));
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.join('\n')).not.toContain(OPENAI_SECRET);
  }, 60_000);

  it('aivault ca path prints the CA cert; its private key is nowhere in clear under the vault dir', async () => {
    const r = await runCli(['ca', 'path'], { env });
    expect(r.code, r.stderr).toBe(0);
    const certPath = r.stdout.trim();
    expect(certPath).toBe(caCertPath(pv.config.vaultDir));
    const certPem = readFileSync(certPath, 'utf8');
    const cert = new X509Certificate(certPem);
    expect(cert.ca).toBe(true);
    // The sealed key opens with the vault's key, and it is the CA's key …
    const sealed = JSON.parse(readFileSync(join(pv.config.vaultDir, CA_DIR, CA_KEY_FILE), 'utf8'));
    const auditKey = pv.vault.auditKey();
    if (!auditKey) throw new Error('vault locked');
    const keyPem = openCaKey(auditKey, sealed, certPem);
    if (!keyPem) throw new Error('sealed CA key does not open');
    const key = createPrivateKey(keyPem);
    expect(createPublicKey(key).export({ format: 'pem', type: 'spki' })).toBe(
      cert.publicKey.export({ format: 'pem', type: 'spki' }),
    );
    // … and no file under the vault dir holds it in any clear form.
    const der = key.export({ format: 'der', type: 'pkcs8' });
    const needles = [
      der.subarray(40, 100),
      Buffer.from(der.toString('base64').slice(100, 160)),
      Buffer.from('PRIVATE KEY'),
    ];
    const walk = (dir: string): string[] =>
      readdirSync(dir).flatMap((n) => {
        const p = join(dir, n);
        const st = statSync(p, { throwIfNoEntry: false });
        if (!st) return [];
        return st.isDirectory() ? walk(p) : st.isFile() ? [p] : [];
      });
    const files = walk(pv.config.vaultDir);
    expect(files.length).toBeGreaterThan(3);
    for (const f of files) {
      const content = readFileSync(f);
      for (const n of needles) expect(content.includes(n), `${f} holds the CA key`).toBe(false);
    }
  }, 60_000);

  it('git ls-remote over HTTPS gets Basic auth injected for a git host capability', async () => {
    const before = git.seen.length;
    const r = await runCli(
      ['run', '--capability', 'gitsrv/read', '--', 'git', 'ls-remote', 'https://git.test/org/repo.git'],
      { env: { ...env, GIT_TERMINAL_PROMPT: '0' }, timeoutMs: 60_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${GIT_SHA}\trefs/heads/main`);
    const seen = git.seen.slice(before);
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((s) => s.authorization?.startsWith('Basic '))).toBe(true);
    // Outside the capability's path prefix: refused by the proxy, never sent upstream.
    const other = await runCli(
      ['run', '--capability', 'gitsrv/read', '--', 'git', 'ls-remote', 'https://git.test/elsewhere/repo.git'],
      { env: { ...env, GIT_TERMINAL_PROMPT: '0' }, timeoutMs: 60_000 },
    );
    expect(other.code).not.toBe(0);
    expect(git.seen.slice(before).length).toBe(seen.length);
  }, 90_000);

  it('--tunnel-host gives a blind tunnel (no termination, no injection) to that host only', async () => {
    const before = pv.upstream.requests.length;
    const target = `localhost:${pv.upstream.port}`;
    const curl = `curl -sS --noproxy '' --cacert ${createTestCa().caCertPath} -H 'x-echo-headers: omit' https://${target}/tunnelled`;
    const r = await runCli(['run', '--tunnel-host', target, '--', 'sh', '-c', curl], {
      env,
      timeoutMs: 60_000,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ path: '/tunnelled' });
    const seen = pv.upstream.requests.slice(before);
    expect(seen).toHaveLength(1);
    expect(seen[0]?.headers.authorization).toBeUndefined();
    // Without --tunnel-host the same request is refused at CONNECT.
    const refused = await runCli(['run', '--', 'sh', '-c', `${curl} -o /dev/null -w '%{http_connect}'`], {
      env,
      timeoutMs: 60_000,
    });
    expect(refused.stdout).toBe('403');
  }, 90_000);

  it('--no-proxy keeps the base-URL behaviour', async () => {
    const r = await runCli(
      [
        'run',
        '--no-proxy',
        '--',
        process.execPath,
        '-e',
        'process.stdout.write(JSON.stringify({p: process.env.HTTPS_PROXY ?? null, k: process.env.OPENAI_API_KEY, b: process.env.OPENAI_BASE_URL}))',
      ],
      { env, timeoutMs: 60_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { p: string | null; k: string; b: string };
    expect(out.p).toBeNull();
    expect(out.k).toMatch(/^avp_/);
    expect(out.b).toMatch(/\/v\/openai\/v1$/);
  }, 60_000);
});

/**
 * Shared setup for the attack suite (test/security/*.test.ts). Everything here is what an attacker has:
 * the compiled `aivault` CLI, the daemon socket, the environment and the files of the user's account.
 *
 * One HTTPS upstream plays both the real provider (`api.openai.com`, `upstream.test`) and the attacker's
 * collector (`evil.test`, `collector.test`): the dev resolver maps all of them to the same local port and
 * the upstream records the Host header it received, so `hits(host)` tells which one a request reached.
 */
import { spawnSync } from 'node:child_process';
import type { IncomingMessage } from 'node:http';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { connect, type DaemonClient } from '../../../src/core/protocol/client.js';
import type { Envelope } from '../../../src/core/broker/types.js';
import { registerSecret, runCli, type CliResult, headerCredentialArgs } from '../../support/run-cli.js';
import { startHttpsUpstream, type HttpsUpstream, type SeenRequest } from '../../support/https-upstream.js';
import { createTestCa, issueServerCert } from '../../support/test-ca.js';
import { createDevHome, stopAutostartedDaemon } from '../../support/dev-vault.js';

export const ATTACKER_HOSTS = ['evil.test', 'collector.test'] as const;

export interface AttackEnv {
  readonly home: string;
  readonly vaultDir: string;
  readonly upstream: HttpsUpstream;
  readonly caCertPath: string;
  /** Env for the CLI: isolated vault, dev overrides (honoured only because the vault is `init --dev`). */
  readonly env: Record<string, string>;
  /** The OPENAI_API_KEY value stored in the vault (registered: any CLI output containing it fails). */
  readonly openaiKey: string;
  /** Value of a custom (unpinned) secret used by the `echo` credential. */
  readonly echoKey: string;
  readonly echoSecretId: string;
  cli(
    args: readonly string[],
    extra?: Record<string, string | undefined>,
    input?: string,
  ): Promise<CliResult>;
  /** Requests the upstream received with this Host header (secret values replaced by `[mock-redacted]`). */
  hits(host: string): SeenRequest[];
  /** What actually arrived on the wire, before the mock redacted it: host, url, headers. */
  readonly raw: RawRequest[];
  /** Make the mock redact this value too (e.g. a rotated key). */
  addSecret(value: string): void;
  /** Stop the autostarted daemon (by its pid file) and the upstream; remove the temp dir. */
  close(): Promise<void>;
}

export function uniqueSecret(tag: string): string {
  return registerSecret(
    `sk-${tag}-${Math.random().toString(36).slice(2, 12)}${Math.random().toString(36).slice(2, 12)}`,
  );
}

export interface RawRequest {
  readonly host: string;
  readonly url: string;
  readonly headers: Record<string, string | string[] | undefined>;
}

/** Placeholder the mock puts where a stored secret arrived, so echoed bodies never carry the key. */
export const MOCK_REDACTED = '[mock-redacted]';

/**
 * The echo mock reflects the request (headers, url) in its body: a "provider" that echoes the key back is
 * out of scope (seed 002: upstream compromise), and would make every output check meaningless. So a
 * listener runs before the echo handler, keeps the raw request for assertions, and replaces secret
 * values with MOCK_REDACTED. Any secret in CLI output is then the broker's own leak.
 */
function redactingMock(upstream: HttpsUpstream, secrets: string[], raw: RawRequest[]): void {
  const scrub = (v: string): string => {
    let out = v;
    for (const s of secrets) out = out.split(s).join(MOCK_REDACTED);
    for (const s of secrets) out = out.split(encodeURIComponent(s)).join(MOCK_REDACTED);
    for (const s of secrets) out = out.split(Buffer.from(s).toString('base64')).join(MOCK_REDACTED);
    return out;
  };
  upstream.server.prependListener('request', (req: IncomingMessage) => {
    raw.push({
      host: String(req.headers.host ?? '').split(':')[0] ?? '',
      url: req.url ?? '',
      headers: { ...req.headers },
    });
    req.url = scrub(req.url ?? '');
    for (const [k, v] of Object.entries(req.headers)) {
      if (typeof v === 'string') req.headers[k] = scrub(v);
      else if (Array.isArray(v)) req.headers[k] = v.map(scrub);
    }
  });
}

export interface AttackEnvOptions {
  /** `init --dev` (default true). A non-dev vault ignores every AIVAULT_DEV_* variable. */
  readonly dev?: boolean;
  /** Create the OPENAI_API_KEY and the custom echo credential/capability (default true). */
  readonly seed?: boolean;
  /** Extra env for every CLI call. */
  readonly extraEnv?: Record<string, string>;
  /** Extra dev-resolve entries: host → local port (other TLS servers a test runs). */
  readonly extraResolve?: Record<string, number>;
}

export async function startAttackEnv(opts: AttackEnvOptions = {}): Promise<AttackEnv> {
  // The certificate covers the attacker's hosts too, so a request the broker wrongly sent there would
  // complete and be recorded (otherwise TLS would fail first and "the collector got nothing" proves nothing).
  const upstream = await startHttpsUpstream(issueServerCert([...ATTACKER_HOSTS]));
  const { home, vaultDir, env, remove } = createDevHome({
    prefix: 'aivault-attack-',
    inherit: true,
    upstream: upstream.port,
    hosts: ['api.openai.com', 'upstream.test', ...ATTACKER_HOSTS],
    extraResolve: opts.extraResolve,
    env: { AIVAULTD_WORKERS: '1', ...opts.extraEnv },
  });
  const cli = (args: readonly string[], extra: Record<string, string | undefined> = {}, input?: string) =>
    runCli(args, { env: { ...env, ...extra }, timeoutMs: 30_000, ...(input !== undefined ? { input } : {}) });
  const openaiKey = uniqueSecret('openai');
  const echoKey = uniqueSecret('echo');
  const mockSecrets = [openaiKey, echoKey];
  const raw: RawRequest[] = [];
  redactingMock(upstream, mockSecrets, raw);
  let echoSecretId = '';
  const init = await cli(opts.dev === false ? ['init'] : ['init', '--dev']);
  expect(init.code, init.stderr).toBe(0);
  if (opts.seed !== false) {
    const s = await cli(['secrets', 'create', '--name', 'OPENAI_API_KEY', '--value-stdin'], {}, openaiKey);
    expect(s.code, s.stderr).toBe(0);
    const e = await cli(['-v', 'secrets', 'create', '--name', 'ECHO_TOKEN', '--value-stdin'], {}, echoKey);
    expect(e.code, e.stderr).toBe(0);
    echoSecretId = (JSON.parse(e.stdout) as { secret: { id: string } }).secret.id;
    const c = await cli([
      ...headerCredentialArgs({
        id: 'echo',
        secretRef: `vault:secret:${echoSecretId}`,
        host: 'upstream.test',
      }),
    ]);
    expect(c.code, c.stderr).toBe(0);
    const cap = await cli([
      'capability',
      'create',
      'echo/api',
      '--credential',
      'echo',
      '--method',
      'GET',
      '--method',
      'POST',
      '--path',
      '/v1',
    ]);
    expect(cap.code, cap.stderr).toBe(0);
  }
  return {
    home,
    vaultDir,
    upstream,
    caCertPath: createTestCa().caCertPath,
    env,
    openaiKey,
    echoKey,
    echoSecretId,
    cli,
    raw,
    addSecret: (v) => void mockSecrets.push(v),
    hits: (host) => upstream.requests.filter((r) => String(r.headers.host ?? '').split(':')[0] === host),
    async close() {
      stopAutostartedDaemon(vaultDir);
      await upstream.close();
      remove();
    },
  };
}

/** Connect to the daemon the CLI autostarted for this env (as any same-user process can). */
export async function attackerSocket(a: AttackEnv): Promise<DaemonClient> {
  // Any invoke autostarts aivaultd (the attacker doesn't even need to).
  const warm = await a.cli(['invoke', 'openai/models', '--path', '/v1/models/warm-up']);
  expect(warm.code, warm.stderr).toBe(0);
  return connect({ socketPath: join(a.vaultDir, 'run', 'aivaultd.sock') });
}

/** Invoke over the socket; resolves to {status, url-the-upstream-saw} or {error code}. */
export async function socketTry(
  a: AttackEnv,
  c: DaemonClient,
  envelope: Envelope,
): Promise<
  { ok: true; status: number; seen: RawRequest[] } | { ok: false; error: string; seen: RawRequest[] }
> {
  const before = a.raw.length;
  try {
    const res = await c.invoke(envelope);
    return { ok: true, status: res.status, seen: a.raw.slice(before) };
  } catch (e) {
    return { ok: false, error: (e as { code?: string }).code ?? String(e), seen: a.raw.slice(before) };
  }
}

/** Kill the daemon the CLI autostarted for this vault (pid from its pid file), if any. */
export const stopDaemonOf = stopAutostartedDaemon;

/** Every encoding of a secret an exfiltrating reader might grep for. */
export function encodings(secret: string): string[] {
  const b = Buffer.from(secret, 'utf8');
  return [
    secret,
    b.toString('base64'),
    b.toString('base64').replace(/=+$/, ''),
    b.toString('base64url'),
    b.toString('hex'),
    b.toString('hex').toUpperCase(),
    encodeURIComponent(secret),
    Buffer.from(secret, 'utf16le').toString('latin1'),
  ];
}

/** All regular files under `dir` (recursively). */
export function allFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = statSync(p, { throwIfNoEntry: false });
      if (!st) continue;
      if (st.isDirectory()) walk(p);
      else if (st.isFile()) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Throws naming the file and encoding if any file under `dir` contains any encoding of any secret. */
export function assertNoSecretInFiles(dir: string, secrets: readonly string[]): number {
  const files = allFiles(dir);
  for (const f of files) {
    const content = readFileSync(f).toString('latin1');
    for (const s of secrets) {
      for (const enc of encodings(s)) {
        if (enc.length >= 8 && content.includes(enc))
          throw new Error(`secret (${enc.slice(0, 4)}…) found in ${f}`);
      }
    }
  }
  return files.length;
}

/** Parse `-v` JSON error output ({error, message}) from stdout or stderr. */
export function wireError(r: CliResult): { error: string; message: string } {
  for (const text of [r.stdout, r.stderr]) {
    const t = text.trim();
    const start = t.indexOf('{');
    if (start < 0) continue;
    try {
      const obj = JSON.parse(t.slice(start)) as { error?: unknown; message?: unknown };
      if (typeof obj.error === 'string') return { error: obj.error, message: String(obj.message) };
    } catch {
      // not JSON
    }
  }
  throw new Error(`no JSON error in output (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
}

/** Is `user` present (creates it when running as root and it is absent)? */
export function ensureUser(user: string): boolean {
  if (spawnSync('id', ['-u', user]).status === 0) return true;
  if (process.getuid?.() !== 0) return false;
  const r = spawnSync('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', user]);
  return r.status === 0 || spawnSync('id', ['-u', user]).status === 0;
}

/** An attack env whose daemon serves the loopback HTTP listener, started; `port` is that listener's. */
export async function startHttpAttackEnv(): Promise<{ env: AttackEnv; port: number }> {
  const env = await startAttackEnv({ extraEnv: { AIVAULTD_HTTP: '127.0.0.1:0' } });
  // Any invoke autostarts aivaultd, which then writes run/aivaultd.http.json.
  expect((await env.cli(['invoke', 'openai/models', '--path', '/v1/models/warm-up'])).code).toBe(0);
  const info = JSON.parse(readFileSync(join(env.vaultDir, 'run', 'aivaultd.http.json'), 'utf8')) as {
    port: number;
  };
  return { env, port: info.port };
}

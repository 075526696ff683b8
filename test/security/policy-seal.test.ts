/**
 * Attack (seed 002, issue 19): same-user code cannot unlock a passphrase vault, but it can write the vault
 * directory. The policy files are plain JSON that aivaultd honours, so the attacker edits them instead of
 * asking for operator power: re-points a credential at its own host, widens a capability, drops a rate
 * limit, adds a binding, adds a proxy token of its own, or turns sealing off in vault.json.
 * Stopped by: the policy seal (src/stores/vault/policy-seal.ts) — every policy file carries a MAC under a subkey
 * of the KEK, checked on every read; a mismatch is `storage_corrupt` naming the file and nothing is sent.
 * The collector (evil.test) must receive nothing, and the key must never leave for any other host.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../src/stores/tokens/tokens.js';
import { sealCheck } from '../../src/stores/vault/aead.js';
import { Kek } from '../../src/stores/vault/secret-bytes.js';
import { deriveKek } from '../../src/stores/vault/providers/passphrase.js';
import { createDevHome, stopAutostartedDaemon } from '../support/dev-vault.js';
import { startHttpsUpstream, type HttpsUpstream } from '../support/https-upstream.js';
import { issueServerCert } from '../support/test-ca.js';
import { headerCredentialArgs, registerSecret, runCli } from '../support/run-cli.js';

const PASS = registerSecret('policy-seal passphrase one');
const PASS2 = registerSecret('policy-seal passphrase two');

interface Env {
  vaultDir: string;
  key: string;
  secretId: string;
  cli(args: readonly string[], input?: string, extra?: Record<string, string>): ReturnType<typeof runCli>;
  hits(host: string): number;
  close(): Promise<void>;
}

let upstream: HttpsUpstream;
beforeAll(async () => {
  upstream = await startHttpsUpstream(issueServerCert(['evil.test']));
});
afterAll(async () => upstream?.close());

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
const writeJson = (path: string, v: unknown) => writeFileSync(path, JSON.stringify(v, null, 2));

/** A passphrase vault unlocked in aivaultd (with the loopback HTTP listener), one custom credential. */
async function passphraseEnv(opts: { legacy?: boolean } = {}): Promise<Env> {
  const home = createDevHome({
    prefix: 'aivault-seal-',
    inherit: true,
    upstream: upstream.port,
    hosts: ['upstream.test', 'evil.test'],
    env: { AIVAULTD_WORKERS: '1', AIVAULTD_HTTP: '127.0.0.1:0' },
  });
  const cli: Env['cli'] = (args, input, extra = {}) =>
    runCli(args, {
      env: { ...home.env, ...extra },
      timeoutMs: 60_000,
      ...(input !== undefined ? { input } : {}),
    });
  const init = await cli(['init', '--provider', 'passphrase', '--passphrase', PASS, '--dev']);
  expect(init.code, init.stderr).toBe(0);
  if (opts.legacy) await makeLegacy(home.vaultDir);
  const u = await cli(['unlock', '--passphrase-stdin'], `${PASS}\n`);
  expect(u.code, u.stderr).toBe(0);
  const key = registerSecret(`sk-seal-${Math.random().toString(36).slice(2, 14)}`);
  const s = await cli(
    ['-v', 'secrets', 'create', '--name', 'ECHO_TOKEN', '--value-stdin', '--passphrase', PASS],
    key,
  );
  expect(s.code, s.stderr).toBe(0);
  const id = (JSON.parse(s.stdout) as { secret: { id: string } }).secret.id;
  const c = await cli([
    ...headerCredentialArgs({ id: 'echo', secretRef: `vault:secret:${id}`, host: 'upstream.test' }),
    '--passphrase',
    PASS,
  ]);
  expect(c.code, c.stderr).toBe(0);
  const cap = await cli([
    ...['capability', 'create', 'echo/api', '--credential', 'echo', '--method', 'GET', '--path', '/v1'],
    ...['--passphrase', PASS],
  ]);
  expect(cap.code, cap.stderr).toBe(0);
  return {
    vaultDir: home.vaultDir,
    key,
    secretId: id,
    cli,
    hits: (host) =>
      upstream.requests.filter((r) => String(r.headers.host ?? '').split(':')[0] === host).length,
    async close() {
      stopAutostartedDaemon(home.vaultDir);
      home.remove();
    },
  };
}

/** What a vault made before the seal existed looks like: no flag, the old check-record AAD, no seals. */
async function makeLegacy(vaultDir: string): Promise<void> {
  const path = join(vaultDir, 'vault.json');
  const meta = readJson(path) as {
    vaultId: string;
    provider: { kdf: Parameters<typeof deriveKek>[1] };
    policySeal?: boolean;
  };
  const kek = await deriveKek(PASS, meta.provider.kdf);
  const { policySeal: _flag, ...rest } = meta;
  writeJson(path, { ...rest, provider: { ...meta.provider, check: sealCheck(kek, meta.vaultId) } });
  kek.dispose();
  for (const f of ['broker', 'capabilities', 'tokens']) {
    const { seal: _seal, ...doc } = readJson(join(vaultDir, `${f}.json`));
    writeJson(join(vaultDir, `${f}.json`), doc);
  }
}

const invoke = (e: Env, path = '/v1/x', method = 'GET') =>
  e.cli(['-v', 'invoke', 'echo/api', '--method', method, '--path', path]);

/** Edit a policy file as the attacker, run `attempt`, then put the original bytes back. */
async function tampered<T>(
  e: Env,
  file: string,
  edit: (doc: Record<string, unknown>) => void,
  attempt: () => Promise<T>,
): Promise<T> {
  const path = join(e.vaultDir, file);
  const original = readFileSync(path, 'utf8');
  const doc = JSON.parse(original) as Record<string, unknown>;
  edit(doc);
  writeFileSync(path, JSON.stringify(doc, null, 2));
  try {
    return await attempt();
  } finally {
    writeFileSync(path, original);
  }
}

type Rec = Record<string, unknown>;
const list = (doc: Rec, k: string) => doc[k] as Rec[];

/** The host swap: the custom credential and its capability re-pointed at the attacker's collector. */
function repointAtCollector(broker: Rec): void {
  list(broker, 'credentials').find((c) => c.id === 'echo')!.hosts = ['evil.test'];
  list(broker, 'capabilities').find((c) => c.id === 'echo/api')!.allow = {
    hosts: ['evil.test'],
    methods: ['GET'],
    pathPrefixes: ['/'],
  };
}

describe('attack: editing the policy files of a sealed passphrase vault', () => {
  let e: Env;
  beforeAll(async () => {
    e = await passphraseEnv();
    const ok = await invoke(e);
    expect(ok.code, ok.stderr).toBe(0); // a working setup, before any tamper
  }, 120_000);
  afterAll(() => e?.close());

  it('status shows policySealed', async () => {
    const st = JSON.parse((await e.cli(['-v', 'status'])).stdout) as Rec;
    expect(st.policySealed).toBe(true);
  });

  it('broker.json: the credential re-pointed at the attacker host → storage_corrupt, nothing sent', async () => {
    const before = e.hits('evil.test');
    const r = await tampered(
      e,
      'broker.json',
      (b) => {
        repointAtCollector(b);
      },
      () => invoke(e),
    );
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/storage_corrupt/);
    expect(r.stdout + r.stderr).toMatch(/broker\.json/);
    expect(e.hits('evil.test')).toBe(before);
  });

  it('broker.json: a capability widened to every method and path → storage_corrupt', async () => {
    const before = upstream.requests.length;
    const r = await tampered(
      e,
      'broker.json',
      (b) => {
        const cap = list(b, 'capabilities').find((c) => c.id === 'echo/api')!;
        cap.allow = { hosts: ['upstream.test'], methods: ['GET', 'DELETE'], pathPrefixes: ['/'] };
      },
      () => invoke(e, '/admin/everything', 'DELETE'),
    );
    expect(r.stdout + r.stderr).toMatch(/storage_corrupt/);
    expect(upstream.requests.length).toBe(before);
  });

  it('broker.json: the operator rate limit removed → storage_corrupt, not unlimited calls', async () => {
    const p = await e.cli([
      'capability',
      'policy',
      'set',
      '--capability',
      'echo/api',
      '--rate-limit-per-minute',
      '1000',
      '--passphrase',
      PASS,
    ]);
    expect(p.code, p.stderr).toBe(0);
    const r = await tampered(
      e,
      'broker.json',
      (b) => {
        b.policies = [];
      },
      () => invoke(e),
    );
    expect(r.stdout + r.stderr).toMatch(/storage_corrupt/);
  });

  it('broker.json: the operator approval requirement removed by hand → storage_corrupt, nothing sent', async () => {
    const set = (mode: string) =>
      e.cli(['capability', 'policy', 'set', 'echo/api', '--approval', mode, '--passphrase', PASS]);
    const on = await set('always');
    expect(on.code, on.stderr).toBe(0);
    try {
      const before = upstream.requests.length;
      const r = await tampered(
        e,
        'broker.json',
        (b) => {
          for (const p of list(b, 'policies')) delete p.approval;
        },
        () => invoke(e, '/v1/unapproved'),
      );
      expect(r.code).not.toBe(0);
      expect(r.stdout + r.stderr).toMatch(/storage_corrupt/);
      expect(r.stdout + r.stderr).toMatch(/broker\.json/);
      expect(upstream.requests.length).toBe(before);
    } finally {
      const off = await set('off');
      expect(off.code, off.stderr).toBe(0);
    }
  });

  it('capabilities.json: an added binding → storage_corrupt naming the file', async () => {
    const r = await tampered(
      e,
      'capabilities.json',
      (b) => {
        list(b, 'bindings').push({
          capabilityId: 'echo/api',
          secretRef: 'vault:secret:aaaaaaaaaaaaaaaaaaaaaaaaaa',
          scope: { kind: 'global' },
        });
      },
      () => e.cli(['-v', 'capability', 'bindings']),
    );
    expect(r.code).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/storage_corrupt/);
    expect(r.stdout + r.stderr).toMatch(/capabilities\.json/);
  });

  it('tokens.json: a proxy token of the attacker’s own → refused on the HTTP listener, nothing sent', async () => {
    const info = readJson(join(e.vaultDir, 'run', 'aivaultd.http.json'));
    const base =
      typeof info.url === 'string' ? info.url.replace(/\/$/, '') : `http://127.0.0.1:${String(info.port)}`;
    const evilToken = registerSecret(`avp_${'A'.repeat(43)}`);
    const before = upstream.requests.length;
    const status = await tampered(
      e,
      'tokens.json',
      (t) => {
        list(t, 'tokens').push({
          kind: 'proxy',
          id: 'tok_attacker00000000',
          hash: hashToken(evilToken),
          capabilities: ['echo/*'],
          createdAtMs: Date.now(),
          expiresAtMs: Date.now() + 86_400_000,
        });
      },
      async () => {
        const res = await fetch(`${base}/aivault/proxy`, {
          method: 'POST',
          headers: { authorization: `Bearer ${evilToken}`, 'content-type': 'application/json' },
          body: JSON.stringify({ capability: 'echo/api', request: { method: 'GET', path: '/v1/x' } }),
        });
        const text = await res.text();
        expect(text).toMatch(/storage_corrupt/);
        return res.status;
      },
    );
    expect(status).not.toBe(200);
    expect(upstream.requests.length).toBe(before);
  });

  it('operator writes stay sealed and working: credential create, policy set, token mint', async () => {
    const c = await e.cli([
      ...headerCredentialArgs({
        id: 'echo2',
        secretRef: `vault:secret:${e.secretId}`,
        host: 'upstream.test',
      }),
      '--passphrase',
      PASS,
    ]);
    expect(c.code, c.stderr).toBe(0);
    const m = await e.cli([
      '-v',
      'token',
      'mint',
      '--capability',
      'echo/*',
      '--ttl',
      '10m',
      '--passphrase',
      PASS,
    ]);
    expect(m.code, m.stderr).toBe(0);
    registerSecret((JSON.parse(m.stdout) as { token: string }).token);
    for (const f of ['broker.json', 'capabilities.json', 'tokens.json']) {
      expect(readJson(join(e.vaultDir, f)).seal, f).toMatchObject({ v: 1 });
    }
    const t = await e.cli(['-v', 'token', 'list']);
    expect(t.code, t.stderr).toBe(0);
    const ok = await invoke(e);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('rotate-master (same passphrase, then a new one) keeps every policy file readable', async () => {
    for (const [from, to] of [
      [PASS, PASS],
      [PASS, PASS2],
    ] as const) {
      const r = await e.cli(['rotate-master', '--new-passphrase', to, '--passphrase', from]);
      expect(r.code, r.stderr).toBe(0);
      const ok = await invoke(e);
      expect(ok.code, ok.stderr).toBe(0);
      expect((await e.cli(['-v', 'token', 'list'])).code).toBe(0);
    }
  });

  it('vault.json policySeal flipped to false → the next policy read and the next unlock are refused', async () => {
    const path = join(e.vaultDir, 'vault.json');
    const original = readFileSync(path, 'utf8');
    const before = e.hits('evil.test');
    try {
      writeJson(path, { ...(JSON.parse(original) as Rec), policySeal: false });
      const r = await tampered(
        e,
        'broker.json',
        (b) => {
          const { seal: _s, ...rest } = b;
          for (const k of Object.keys(b)) delete b[k];
          Object.assign(b, rest);
          repointAtCollector(b);
        },
        () => invoke(e),
      );
      expect(r.stdout + r.stderr).toMatch(/storage_corrupt/);
      expect(e.hits('evil.test')).toBe(before);
      expect((await e.cli(['lock'])).code).toBe(0);
      const u = await e.cli(['unlock', '--passphrase-stdin'], `${PASS2}\n`);
      expect(u.code).not.toBe(0);
      expect(u.stdout + u.stderr).toMatch(/storage_corrupt|policySeal/);
    } finally {
      writeFileSync(path, original);
    }
    const u = await e.cli(['unlock', '--passphrase-stdin'], `${PASS2}\n`);
    expect(u.code, u.stderr).toBe(0);
    expect((await invoke(e)).code).toBe(0);
  });

  it('vault.json swapped for a file-key one (the attacker’s key) while unlocked → refused, then and after', async () => {
    const path = join(e.vaultDir, 'vault.json');
    const original = readFileSync(path, 'utf8');
    const meta = JSON.parse(original) as Rec;
    const raw = randomBytes(32);
    const keyFile = join(e.vaultDir, '..', 'attacker.key');
    writeFileSync(keyFile, `${raw.toString('base64')}\n`, { mode: 0o600 });
    const kek = Kek.fromBytes(Buffer.from(raw));
    const before = e.hits('evil.test');
    try {
      const { policySeal: _p, ...rest } = meta;
      writeJson(path, { ...rest, provider: { kind: 'file', path: keyFile }, kekId: kek.kekId });
      const r = await tampered(
        e,
        'broker.json',
        (b) => {
          delete b.seal;
          repointAtCollector(b);
        },
        () => invoke(e),
      );
      expect(r.code).not.toBe(0);
      expect(r.stdout + r.stderr).toMatch(/storage_corrupt|vault_unavailable/);
    } finally {
      writeFileSync(path, original);
      kek.dispose();
    }
    expect(e.hits('evil.test')).toBe(before);
    const u = await e.cli(['unlock', '--passphrase-stdin'], `${PASS2}\n`);
    expect(u.code, u.stderr).toBe(0);
    const ok = await invoke(e);
    expect(ok.code, ok.stderr).toBe(0);
    expect(e.hits('evil.test')).toBe(before);
  });
});

describe('a legacy (unsealed) passphrase vault', () => {
  let e: Env;
  beforeAll(async () => {
    e = await passphraseEnv({ legacy: true });
  }, 120_000);
  afterAll(() => e?.close());

  it('works unsealed, then `reseal-policy` seals it and edits fail closed', async () => {
    expect((JSON.parse((await e.cli(['-v', 'status'])).stdout) as Rec).policySealed).toBe(false);
    const ok = await invoke(e);
    expect(ok.code, ok.stderr).toBe(0);
    const refused = await e.cli(['reseal-policy']);
    expect(refused.stdout + refused.stderr).toMatch(/operator_auth_required|passphrase/);
    const r = await e.cli(['reseal-policy', '--passphrase', PASS]);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse((await e.cli(['-v', 'status'])).stdout) as Rec).policySealed).toBe(true);
    expect((await invoke(e)).code).toBe(0);
    const before = e.hits('evil.test');
    const t = await tampered(
      e,
      'broker.json',
      (b) => {
        repointAtCollector(b);
      },
      () => invoke(e),
    );
    expect(t.stdout + t.stderr).toMatch(/storage_corrupt/);
    expect(e.hits('evil.test')).toBe(before);
  });
});

// System mode as the seed-002 attacker meets it on Linux: aivaultd runs as its own user, the agent is
// another user in the caller group. The agent can invoke (and read metadata), and nothing else: it
// cannot read the vault or the key file, cannot reach the operator socket, cannot change policy or mint
// tokens, cannot read the daemon's memory or environment, and cannot invoke in-process. A user outside
// the group cannot even invoke. The operator (root) acts through the operator socket, and the vault's
// files stay owned by the daemon user. Needs root (to create users): CI runs as root, so there a skip
// is a failure.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  statSync,
  chownSync,
} from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, assertNoSecret, registerSecret } from '../support/run-cli.js';
import { skipOutsideCi } from '../support/ci.js';
import { startHttpsUpstream, type HttpsUpstream } from '../support/https-upstream.js';
import { createTestCa } from '../support/test-ca.js';
import { makeTraversable } from '../support/traverse.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const suffix = Math.random().toString(36).slice(2, 7);
const DAEMON_USER = `avd${suffix}`;
const GROUP = `avd${suffix}`;
const AGENT = `ava${suffix}`;
const OUTSIDER = `avx${suffix}`;
const KEY = registerSecret(`sk-system-mode-${suffix}-0123456789abcdef`);

let root: string;
let upstream: HttpsUpstream;
let daemon: ChildProcess | undefined;
let devEnv: Record<string, string>;
let traversal: { restore(): void } | undefined;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function idOf(db: 'passwd' | 'group', name: string): number {
  return Number(spawnSync('getent', [db, name], { encoding: 'utf8' }).stdout.split(':')[2]);
}

/** Run the CLI as `user` (root when undefined) against the test layout. */
function cliAs(user: string | undefined, args: string[], extra: Record<string, string> = {}): Promise<Run> {
  const home = user ? join(root, 'home', user) : join(root, 'home', 'root');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: home,
    NO_COLOR: '1',
    AIVAULT_SYSTEM_CONFIG: join(root, 'etc', 'aivault', 'system.json'),
    ...extra,
  };
  const ids = user
    ? {
        uid: idOf('passwd', user),
        gid: idOf('passwd', user) && Number(spawnSync('id', ['-g', user], { encoding: 'utf8' }).stdout),
      }
    : {};
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env,
      ...ids,
      cwd: '/',
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      try {
        assertNoSecret(stdout + stderr, `aivault ${args.join(' ')} as ${user ?? 'root'}`);
      } catch (err) {
        reject(err as Error);
        return;
      }
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end();
  });
}

/** Run a node snippet as `user`; returns its stdout (the snippet prints what it could do). */
function nodeAs(user: string, code: string): string {
  const res = spawnSync(process.execPath, ['-e', code], {
    uid: idOf('passwd', user),
    gid: Number(spawnSync('id', ['-g', user], { encoding: 'utf8' }).stdout),
    encoding: 'utf8',
    cwd: '/',
  });
  return res.stdout.trim();
}

const errorCode = (r: Run): string => (JSON.parse(r.stderr) as { error: string }).error;

async function waitForSocket(path: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = netConnect(path);
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no daemon on ${path}`);
}

// Root-only: a silent skip in CI (which runs as root) would leave system mode untested (support/ci.ts).
describe.skipIf(skipOutsideCi(isRoot, 'root: install system mode (users, /etc, /var/run)'))(
  'system mode (root)',
  () => {
    beforeAll(async () => {
      traversal = makeTraversable();
      upstream = await startHttpsUpstream();
      root = mkdtempSync(join(tmpdir(), 'aivault-system-'));
      chmodSync(root, 0o755);
      for (const d of ['home', 'etc']) mkdirSync(join(root, d), { mode: 0o755 });
      // The daemon user must be able to read the test CA.
      const ca = join(root, 'etc', 'test-ca.pem');
      copyFileSync(createTestCa().caCertPath, ca);
      chmodSync(ca, 0o644);
      devEnv = {
        AIVAULT_DEV_RESOLVE: `api.openai.com=127.0.0.1:${upstream.port}`,
        AIVAULT_DEV_CA_CERT_PATH: ca,
        AIVAULT_DEV_HTTP1_ONLY: '1',
        AIVAULT_DEV_ALLOW_NON_DEFAULT_PORTS: '1',
      };
      const install = await cliAs(undefined, [
        'system',
        'install',
        '--root',
        root,
        '--user',
        DAEMON_USER,
        '--group',
        GROUP,
        '--no-systemd',
        '--dev',
      ]);
      expect(install.code, install.stderr).toBe(0);
      for (const [user, group] of [
        [AGENT, GROUP],
        [OUTSIDER, undefined],
      ] as const) {
        spawnSync('useradd', ['--no-create-home', ...(group ? ['--gid', group] : []), user]);
        mkdirSync(join(root, 'home', user), { mode: 0o700 });
        chownSync(
          join(root, 'home', user),
          idOf('passwd', user),
          Number(spawnSync('id', ['-g', user], { encoding: 'utf8' }).stdout),
        );
      }
      mkdirSync(join(root, 'home', 'root'), { mode: 0o700 });
      daemon = spawn(process.execPath, [CLI, 'system', 'run', '--root', root], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...devEnv },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let log = '';
      daemon.stderr?.setEncoding('utf8').on('data', (d: string) => (log += d));
      await waitForSocket(join(root, 'run', 'aivault', 'aivaultd.sock')).catch((err: Error) => {
        throw new Error(`${err.message}\n${log}`);
      });
      const created = await cliAs(undefined, [
        'secrets',
        'create',
        '--name',
        'OPENAI_API_KEY',
        '--value',
        KEY,
        '-v',
      ]);
      expect(created.code, created.stderr).toBe(0);
    }, 60_000);

    afterAll(async () => {
      if (daemon && daemon.exitCode === null) {
        const exited = new Promise((r) => daemon?.once('exit', r));
        daemon.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      }
      await cliAs(undefined, ['system', 'uninstall', '--root', root, '--purge']);
      for (const u of [AGENT, OUTSIDER]) spawnSync('userdel', [u]);
      spawnSync('groupdel', [GROUP]);
      await upstream?.close();
      traversal?.restore();
    });

    it('the operator (root) wrote through the daemon: every vault file belongs to the daemon user, mode 0600/0700', () => {
      const uid = idOf('passwd', DAEMON_USER);
      const walk = (p: string): void => {
        const st = statSync(p);
        expect(st.uid, p).toBe(uid);
        expect(st.mode & 0o077, p).toBe(0);
        if (st.isDirectory()) for (const e of readdirSync(p)) walk(join(p, e));
      };
      walk(join(root, 'var', 'lib', 'aivault'));
      const sockDir = statSync(join(root, 'run', 'aivault'));
      expect(sockDir.mode & 0o777).toBe(0o750);
      expect(statSync(join(root, 'run', 'aivault', 'operator.sock')).mode & 0o777).toBe(0o600);
      expect(statSync(join(root, 'run', 'aivault', 'aivaultd.sock')).mode & 0o777).toBe(0o660);
    });

    it('an agent in the group invokes; the upstream gets the real key, the agent never sees it', async () => {
      const before = upstream.requests.length;
      const res = await cliAs(AGENT, [
        'invoke',
        'openai/models',
        '--method',
        'GET',
        '--path',
        '/v1/models',
        '--header',
        'x-echo-headers=omit',
      ]);
      expect(res.code, res.stderr).toBe(0);
      expect(upstream.requests[before]?.headers.authorization).toBe(`Bearer ${KEY}`);
      const list = await cliAs(AGENT, ['capability', 'list', '--provider', 'openai', '-v']);
      expect(list.code, list.stderr).toBe(0);
      const status = await cliAs(AGENT, ['status', '-v']);
      expect(JSON.parse(status.stdout)).toMatchObject({
        mode: 'system',
        role: 'caller',
        isolation: { isolated: true },
      });
    });

    it('the agent cannot read the vault, the key file, or the daemon memory and environment', () => {
      const vault = join(root, 'var', 'lib', 'aivault', 'vault');
      const pid = readFileSync(join(root, 'run', 'aivault', 'aivaultd.pid'), 'utf8').trim();
      const out = nodeAs(
        AGENT,
        `const fs=require('fs');for(const p of ${JSON.stringify([join(vault, 'kek.key'), join(vault, 'vault.json'), join(vault, 'secrets'), `/proc/${pid}/environ`, `/proc/${pid}/mem`])}){try{fs.readFileSync(p);console.log('READ '+p)}catch(e){try{fs.readdirSync(p);console.log('READ '+p)}catch(e2){console.log(e.code)}}}`,
      );
      expect(out.split('\n')).toEqual(['EACCES', 'EACCES', 'EACCES', 'EACCES', 'EACCES']);
    });

    it('the agent cannot open the operator socket', () => {
      const out = nodeAs(
        AGENT,
        `const s=require('net').connect(${JSON.stringify(join(root, 'run', 'aivault', 'operator.sock'))});s.on('connect',()=>{console.log('CONNECTED');s.destroy()});s.on('error',e=>console.log(e.code))`,
      );
      expect(out).toBe('EACCES');
    });

    it.each([
      [
        [
          'credential',
          'create',
          'x',
          '--provider',
          'x',
          '--auth',
          'header',
          '--header-name',
          'x',
          '--value-template',
          '{{secret}}',
          '--host',
          'evil.test',
          '--secret-ref',
          'vault:secret:abc',
        ],
      ],
      [['token', 'mint', '--capability', 'openai/*', '--ttl', '7d']],
      [['token', 'operator', 'create']],
      [
        [
          'capability',
          'policy',
          'set',
          '--capability',
          'openai/models',
          '--rate-limit-per-minute',
          '1000000',
        ],
      ],
      [['secrets', 'delete', '--id', 'OPENAI_API_KEY']],
      [['audit']],
      [['lock']],
    ])('the agent is refused %j with operator_auth_required', async (args) => {
      const res = await cliAs(AGENT, [...args, '-v']);
      expect(res.code).toBe(1);
      expect(errorCode(res)).toBe('operator_auth_required');
    });

    it('in-process invocation gets nowhere: the agent cannot read the vault', async () => {
      const before = upstream.requests.length;
      const res = await cliAs(
        AGENT,
        ['invoke', 'openai/models', '--method', 'GET', '--path', '/v1/models', '-v'],
        {
          AIVAULTD_DISABLE: '1',
        },
      );
      expect(res.code).toBe(1);
      expect(upstream.requests.length).toBe(before);
    });

    it('a user outside the group cannot even invoke', async () => {
      const res = await cliAs(OUTSIDER, [
        'invoke',
        'openai/models',
        '--method',
        'GET',
        '--path',
        '/v1/models',
        '-v',
      ]);
      expect(res.code).toBe(1);
      expect(errorCode(res)).toBe('daemon_unavailable');
    });

    it('the operator still manages everything, through the operator socket', async () => {
      const res = await cliAs(undefined, [
        'token',
        'mint',
        '--capability',
        'openai/models',
        '--ttl',
        '60',
        '-v',
      ]);
      expect(res.code, res.stderr).toBe(0);
      const status = await cliAs(undefined, ['status', '-v']);
      expect(JSON.parse(status.stdout)).toMatchObject({ mode: 'system', role: 'operator' });
    });
  },
);

describe.runIf(!isRoot)('system mode (not root)', () => {
  it('cannot run here; CI runs as root, where skipping would hide a broken isolation', () => {
    expect(process.env.CI, 'system-mode tests must run in CI (as root)').not.toBe('true');
  });
});

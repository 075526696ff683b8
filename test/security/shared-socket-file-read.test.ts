/**
 * Attack found while building this suite (confused deputy, `aivaultd --shared`): the envelope's
 * `bodyFilePath` and `multipartFiles[].path` are opened BY THE DAEMON, with the daemon owner's privileges.
 * On the default 0600 socket only the owner can connect, so this grants nothing new (same user, same
 * files). With `--shared` (0660 socket for a group of agent users), an agent user can make the operator's
 * daemon read operator-only files — the file provider's kek.key, ~/.ssh/id_*, … — and send them to any
 * allowed upstream; an upstream that reflects input (echo/paste/file-upload APIs) hands them back.
 *
 * Tried as the attacker would: user `aivault-attacker` in the socket's group runs the real client against
 * a --shared daemon run by root, naming root's 0600 key file as the body. Stopped by policy: file paths
 * are honoured only for the owner's private socket (RequestContext.localFiles), never for --shared peers.
 */
import { spawn, spawnSync } from 'node:child_process';
import { build } from 'esbuild';
import { chmodSync, chownSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDaemon, type Daemon } from '../../src/front/main.js';
import { startHttpsUpstream, type HttpsUpstream } from '../support/https-upstream.js';
import { addCustomCredential, createDevVault, type DevVault } from '../support/dev-vault.js';
import { skipOutsideCi } from '../support/ci.js';
import { ensureUser } from './support/attack-env.js';

const USER = 'aivault-attacker';
const GROUP = 'aivault-agents';
const isRoot = process.getuid?.() === 0;
function ensureGroup(): boolean {
  if (spawnSync('getent', ['group', GROUP]).status !== 0) spawnSync('groupadd', ['--system', GROUP]);
  spawnSync('usermod', ['-a', '-G', GROUP, USER]);
  return spawnSync('getent', ['group', GROUP]).status === 0;
}
const ready = isRoot && ensureUser(USER) && ensureGroup();
const skip = skipOutsideCi(ready, 'root: a second OS user in the --shared group');

let dv: DevVault;
let base: string;
let daemon: Daemon;
let upstream: HttpsUpstream;
let sock: string;
let rootOnly: string;
let attackerClient: string;
const ROOT_SECRET = `root-only-${Math.random().toString(36).slice(2)}`;

beforeAll(async () => {
  if (!ready) return;
  upstream = await startHttpsUpstream();
  dv = await createDevVault({
    parent: '/var/tmp',
    prefix: 'aivault-shared-',
    upstream: upstream.port,
    env: { AIVAULT_DISABLE_DISK_LOGS: '1' },
  });
  base = dv.home;
  chmodSync(base, 0o755);
  await addCustomCredential(dv, {
    id: 'echo',
    secretName: 'T',
    secretValue: 'shared-test-token-1',
    capabilities: { 'echo/api': { methods: ['POST'] } },
  });
  dv.vault.close();
  // The attacker cannot be assumed to read the checkout (its parents may be 0700, as /tmp is on CI): give
  // it the real client as one self-contained file in the world-readable base dir.
  attackerClient = join(base, 'client.mjs');
  await build({
    entryPoints: [resolve('src/core/protocol/client.ts')],
    outfile: attackerClient,
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    logLevel: 'silent',
    external: ['msgpackr-extract', 'bufferutil', 'utf-8-validate'],
    banner: {
      js: "import { createRequire as __attackerRequire } from 'node:module'; const require = __attackerRequire(import.meta.url);",
    },
  });
  chmodSync(attackerClient, 0o644);
  rootOnly = join(base, 'root-only.txt');
  writeFileSync(rootOnly, ROOT_SECRET, { mode: 0o600 });
  const runDir = join(base, 'run');
  mkdirSync(runDir, { mode: 0o770 });
  const gid = Number(spawnSync('getent', ['group', GROUP], { encoding: 'utf8' }).stdout.split(':')[2]);
  chownSync(runDir, 0, gid);
  sock = join(runDir, 'aivaultd.sock');
  daemon = await startDaemon(dv.config, { workers: 1, socketPath: sock, shared: true });
  chownSync(sock, 0, gid);
});
afterAll(async () => {
  await daemon?.stop();
  await upstream?.close();
  dv?.close();
});

/** Async on purpose: the daemon runs in THIS process, a blocking spawn would starve its event loop. */
function asAttacker(envelopeJson: string): Promise<string> {
  const client = attackerClient;
  const script = `import(${JSON.stringify(client)}).then(async ({ connect }) => {
    const c = await connect({ socketPath: ${JSON.stringify(sock)} });
    try { const r = await c.invoke(${envelopeJson}); console.log(Buffer.from(r.body).toString()); }
    catch (e) { console.log('ERR ' + e.code); }
    c.close();
  }).catch((e) => console.log('CONNECT ' + e.code + ' ' + e.message + ' ' + JSON.stringify(e.details)));`;
  return new Promise((done) => {
    const child = spawn('runuser', ['-u', USER, '--', process.execPath, '-e', script]);
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('close', () => {
      clearTimeout(t);
      done(out.trim());
    });
  });
}

describe.skipIf(skip)('attack: a group member makes a --shared daemon read the operator’s files', () => {
  it('the attacker cannot read the file directly, but can use the shared socket (setup sanity)', async () => {
    const direct = spawnSync('runuser', ['-u', USER, '--', 'cat', rootOnly], { encoding: 'utf8' });
    expect(direct.status).not.toBe(0);
    expect(
      await asAttacker(`{ capability: 'echo/api', request: { method: 'POST', path: '/x', body: 'hi' } }`),
    ).toContain('"body":"hi"');
  });

  it('bodyFilePath naming an owner-only file is refused for a shared-socket caller', async () => {
    const out = await asAttacker(
      `{ capability: 'echo/api', request: { method: 'POST', path: '/x', bodyFilePath: ${JSON.stringify(rootOnly)} } }`,
    );
    expect(out).toBe('ERR policy_violation');
    expect(readFileSync(rootOnly, 'utf8')).toBe(ROOT_SECRET);
  });

  it('multipartFiles[].path naming an owner-only file is refused for a shared-socket caller', async () => {
    const out = await asAttacker(
      `{ capability: 'echo/api', request: { method: 'POST', path: '/x', multipartFiles: [{ name: 'f', path: ${JSON.stringify(rootOnly)} }] } }`,
    );
    expect(out).toBe('ERR policy_violation');
  });
});

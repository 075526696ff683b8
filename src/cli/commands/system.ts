/**
 * `aivault system install|uninstall|run|status` (Linux, root): system mode. aivaultd runs as a dedicated
 * user that alone can read the vault and its key file (so the file key provider is out of every agent's
 * reach); agents in the group invoke through a caller socket; the operator (root) acts through an
 * operator socket only root and the daemon user can open. Users and groups are made with the
 * distribution's own tools (useradd/groupadd), the service with a systemd unit; `run` is the foreground
 * mode for containers without systemd.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { AivaultError } from '../../core/errors.js';
import { loadConfig } from '../../core/config/env.js';
import {
  readSystemLayout,
  systemConfigPath,
  systemLayoutFor,
  type SystemLayout,
} from '../../core/config/system.js';
import type { CliContext, CommandOptions, CommandResult } from '../context.js';
import { optBool, optString } from '../context.js';
import { renderFields } from '../output.js';
import { DAEMON_ENTRY } from '../daemon-link.js';

const NAME = /^[a-z_][a-z0-9_-]{0,31}$/;
const UNIT_NAME = 'aivaultd.service';

function requireRoot(what: string): void {
  if (process.platform !== 'linux') throw new AivaultError('usage', 'system mode is for Linux');
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    throw new AivaultError('usage', `${what} must run as root (sudo aivault system ${what.split(' ')[1]})`);
  }
}

function idOf(kind: 'user' | 'group', name: string): number | undefined {
  try {
    const out = execFileSync('getent', [kind === 'user' ? 'passwd' : 'group', name], { encoding: 'utf8' });
    const id = Number(out.split(':')[2]);
    return Number.isInteger(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

function rootOf(opts: CommandOptions): string {
  return optString(opts, 'root') ?? '/';
}

function layoutAt(root: string): SystemLayout {
  const layout = readSystemLayout(systemConfigPath(root));
  if (!layout) {
    throw new AivaultError(
      'not_found',
      `system mode is not installed under ${root} (sudo aivault system install)`,
    );
  }
  return layout;
}

async function chownTree(path: string, uid: number, gid: number): Promise<void> {
  await fsp.lchown(path, uid, gid);
  const st = await fsp.lstat(path);
  if (!st.isDirectory()) return;
  for (const entry of await fsp.readdir(path)) await chownTree(join(path, entry), uid, gid);
}

/** The systemd unit: the daemon as its own user, with the file system locked down around it. */
export function systemdUnit(layout: SystemLayout, configPath: string): string {
  return `[Unit]
Description=aivault broker daemon (system mode)
After=network-online.target

[Service]
Type=simple
User=${layout.user}
Group=${layout.group}
Environment=AIVAULT_DIR=${layout.vaultDir}
ExecStart=${process.execPath} ${DAEMON_ENTRY} --system-config ${configPath}
RuntimeDirectory=aivault
RuntimeDirectoryMode=0750
StateDirectory=aivault
StateDirectoryMode=0700
UMask=0077
LimitCORE=0
NoNewPrivileges=yes
ProtectSystem=strict
ReadWritePaths=${dirname(layout.vaultDir)} ${layout.runDir}
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectControlGroups=yes
RestrictSUIDSGID=yes
LockPersonality=yes
Restart=on-failure

[Install]
WantedBy=multi-user.target
`;
}

const hasSystemd = (): boolean => existsSync('/run/systemd/system');

export async function install(
  _ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  requireRoot('system install');
  const user = optString(opts, 'user') ?? 'aivault';
  const group = optString(opts, 'group') ?? 'aivault';
  if (!NAME.test(user) || !NAME.test(group))
    throw new AivaultError('usage', '--user/--group must be valid user names');
  const root = rootOf(opts);
  const layout = systemLayoutFor(root, user, group);
  const configPath = systemConfigPath(root);
  const steps: string[] = [];
  if (idOf('group', group) === undefined) {
    execFileSync('groupadd', ['--system', group]);
    steps.push(`created group ${group}`);
  }
  if (idOf('user', user) === undefined) {
    execFileSync('useradd', [
      '--system',
      '--gid',
      group,
      '--home-dir',
      dirname(layout.vaultDir),
      '--no-create-home',
      '--shell',
      '/usr/sbin/nologin',
      user,
    ]);
    steps.push(`created user ${user}`);
  }
  const uid = idOf('user', user) as number;
  const gid = idOf('group', group) as number;
  const stateDir = dirname(layout.vaultDir);
  // Parents stay traversable (0755, like /var/lib); the state dir itself is the daemon user's alone.
  await fsp.mkdir(dirname(stateDir), { recursive: true, mode: 0o755 });
  await fsp.mkdir(stateDir, { recursive: true, mode: 0o700 });
  await fsp.chmod(stateDir, 0o700);
  if (!existsSync(join(layout.vaultDir, 'vault.json'))) {
    const { Vault } = await import('../../stores/vault/index.js');
    const config = loadConfig({
      ...process.env,
      AIVAULT_DIR: layout.vaultDir,
      AIVAULT_SYSTEM_CONFIG: undefined,
    });
    const vault = await Vault.init(config, {
      provider: 'file',
      filePath: join(layout.vaultDir, 'kek.key'),
      dev: optBool(opts, 'dev'),
      actor: 'system-install',
    });
    vault.close();
    steps.push(`created the vault (file key provider) at ${layout.vaultDir}`);
  }
  await chownTree(stateDir, uid, gid);
  await fsp.mkdir(dirname(layout.runDir), { recursive: true, mode: 0o755 });
  await fsp.mkdir(layout.runDir, { recursive: true, mode: 0o750 });
  await fsp.chown(layout.runDir, uid, gid);
  await fsp.chmod(layout.runDir, 0o750);
  await fsp.mkdir(dirname(configPath), { recursive: true, mode: 0o755 });
  await fsp.writeFile(configPath, `${JSON.stringify(layout, null, 2)}\n`, { mode: 0o644 });
  steps.push(`wrote ${configPath}`);
  let service = 'not installed (--no-systemd): run it with `sudo aivault system run`';
  if (opts.systemd !== false) {
    const unitPath = join(root, 'etc', 'systemd', 'system', UNIT_NAME);
    await fsp.mkdir(dirname(unitPath), { recursive: true });
    await fsp.writeFile(unitPath, systemdUnit(layout, configPath), { mode: 0o644 });
    steps.push(`wrote ${unitPath}`);
    if (root === '/' && hasSystemd()) {
      execFileSync('systemctl', ['daemon-reload']);
      execFileSync('systemctl', ['enable', '--now', UNIT_NAME]);
      service = 'enabled and started (systemctl status aivaultd)';
    } else {
      service = 'unit written; systemd is not running here: run `sudo aivault system run`';
    }
  }
  const json = { layout, configPath, steps, service };
  return {
    json,
    human: (p) =>
      [
        p.green('System mode installed.'),
        ...steps.map((s) => `  ${p.dim('•')} ${s}`),
        renderFields(
          [
            ['daemon user', `${user} (owns ${stateDir}, mode 0700)`],
            ['caller socket', `${layout.callerSocket} (group ${group}: invoke and metadata only)`],
            ['operator socket', `${layout.operatorSocket} (root and ${user} only)`],
            ['service', service],
          ],
          p,
        ),
        `Let an agent user invoke: ${p.bold(`sudo usermod -aG ${group} <agent-user>`)}`,
      ].join('\n'),
  };
}

export async function uninstall(
  _ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  requireRoot('system uninstall');
  const root = rootOf(opts);
  const layout = layoutAt(root);
  const steps: string[] = [];
  const unitPath = join(root, 'etc', 'systemd', 'system', UNIT_NAME);
  if (existsSync(unitPath)) {
    if (root === '/' && hasSystemd()) {
      execFileSync('systemctl', ['disable', '--now', UNIT_NAME]);
      execFileSync('systemctl', ['daemon-reload']);
    }
    await fsp.rm(unitPath, { force: true });
    steps.push(`removed ${unitPath}`);
  }
  await fsp.rm(layout.runDir, { recursive: true, force: true });
  await fsp.rm(systemConfigPath(root), { force: true });
  steps.push(`removed ${layout.runDir} and ${systemConfigPath(root)}`);
  if (optBool(opts, 'purge')) {
    await fsp.rm(dirname(layout.vaultDir), { recursive: true, force: true });
    steps.push(`deleted the vault ${dirname(layout.vaultDir)}`);
    if (idOf('user', layout.user) !== undefined) {
      execFileSync('userdel', [layout.user]);
      steps.push(`deleted user ${layout.user}`);
    }
  } else {
    steps.push(`kept the vault at ${layout.vaultDir} (--purge deletes it)`);
  }
  return {
    json: { steps },
    human: (p) => [p.green('System mode removed.'), ...steps.map((s) => `  ${p.dim('•')} ${s}`)].join('\n'),
  };
}

/** Foreground daemon as the system user: for containers and hosts without systemd. */
export async function run(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  requireRoot('system run');
  const root = rootOf(opts);
  const layout = layoutAt(root);
  const uid = idOf('user', layout.user);
  const gid = idOf('group', layout.group);
  if (uid === undefined || gid === undefined) {
    throw new AivaultError(
      'not_found',
      `user ${layout.user} or group ${layout.group} is missing (re-run system install)`,
    );
  }
  await fsp.mkdir(dirname(layout.runDir), { recursive: true, mode: 0o755 });
  await fsp.mkdir(layout.runDir, { recursive: true, mode: 0o750 });
  await fsp.chown(layout.runDir, uid, gid);
  await fsp.chmod(layout.runDir, 0o750);
  const env: Record<string, string> = { AIVAULT_DIR: layout.vaultDir, HOME: dirname(layout.vaultDir) };
  // The environment is the daemon's own, not root's: only PATH and the dev overrides (honoured only by
  // a vault created with --dev) pass through.
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && (k === 'PATH' || k.startsWith('AIVAULT_DEV_') || k === 'AIVAULTD_WORKERS'))
      env[k] = v;
  }
  const child = spawn(process.execPath, [DAEMON_ENTRY, '--system-config', systemConfigPath(root)], {
    uid,
    gid,
    env,
    cwd: '/',
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const forward = (sig: NodeJS.Signals): void => void child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
  ctx.stderr.write(`aivaultd exited (${code})\n`);
  return { json: { exitCode: code }, human: () => '', silent: true, ...(code !== 0 ? { exitCode: 1 } : {}) };
}

export async function status(
  _ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const root = rootOf(opts);
  const layout = layoutAt(root);
  const present = (p: string): boolean => existsSync(p);
  const json = {
    layout,
    user: idOf('user', layout.user) !== undefined,
    group: idOf('group', layout.group) !== undefined,
    callerSocket: present(layout.callerSocket),
    operatorSocket: present(layout.operatorSocket),
  };
  return {
    json,
    human: (p) =>
      renderFields(
        [
          ['user', json.user ? layout.user : p.red(`${layout.user} missing`)],
          ['group', json.group ? layout.group : p.red(`${layout.group} missing`)],
          ['vault', layout.vaultDir],
          [
            'caller socket',
            json.callerSocket ? layout.callerSocket : p.yellow(`${layout.callerSocket} (not running)`),
          ],
          ['operator socket', json.operatorSocket ? layout.operatorSocket : p.yellow('(not running)')],
        ],
        p,
      ),
  };
}

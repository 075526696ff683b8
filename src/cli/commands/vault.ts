/** Vault lifecycle commands: status, init, unlock, lock, rotate-master, reseal-policy, audit. */
import { AivaultError } from '../../core/errors.js';
import { hasDevRequests } from '../../core/config/env.js';
import { Vault } from '../../stores/vault/index.js';
import { AuditLog, type AuditEvent } from '../../stores/audit/audit-log.js';
import type { FleetAuditEvent } from '../../stores/fleet/audit-store.js';
import { vaultPaths } from '../../stores/vault/paths.js';
import type { CliContext, CommandOptions, CommandResult } from '../context.js';
import { optBool, optString, parseCount } from '../context.js';
import { escapeControl, renderFields, renderTable, type Painter } from '../output.js';
import { openVaultForWrite, promptHidden, readAllStdin } from '../secret-input.js';
import { assertTrustedDaemon, tellDaemon } from '../daemon-link.js';

function stateLabel(localLocked: boolean, daemonLocked: unknown, p: Painter): string {
  if (!localLocked) return p.green('unlocked');
  return daemonLocked === false ? p.green('unlocked in aivaultd') : p.yellow('locked');
}

/**
 * What this install protects against same-user code (the seed-002 attacker), in one line. Printed by
 * status and init so nobody mistakes a convenience vault for an isolated one (docs/security.md).
 */
export function isolationOf(
  config: CliContext['config'],
  provider: string,
): { isolated: boolean; summary: string } {
  if (config.system) {
    return {
      isolated: true,
      summary: `system mode: the vault and its key belong to the ${config.system.layout.user} user; agents can only invoke (caller socket)`,
    };
  }
  if (provider === 'passphrase') {
    return {
      isolated: false,
      summary:
        'partial: the key is never on disk, operator actions need the passphrase and edited policy files are refused (policy seal), but code running as you can still read the vault directory and put back an older sealed policy file; for full isolation use system mode (sudo aivault system install)',
    };
  }
  return {
    isolated: false,
    summary: `not isolated: code running as you can read the ${provider} key and every secret; use system mode (sudo aivault system install) or a passphrase vault with aivaultd`,
  };
}

async function systemStatus(ctx: CliContext): Promise<CommandResult> {
  const system = ctx.config.system;
  if (!system) throw new AivaultError('internal', 'not in system mode');
  const daemon = await tellDaemon(ctx.config, { type: 'status' }).catch(() => undefined);
  const iso = isolationOf(ctx.config, 'file');
  const json = { mode: 'system', role: system.role, layout: system.layout, isolation: iso, daemon };
  return {
    json,
    human: (p) =>
      renderFields(
        [
          ['mode', p.bold('system')],
          ['you are', system.role === 'operator' ? p.green('operator') : 'caller (invoke and metadata only)'],
          ['vault', `${system.layout.vaultDir} (owned by ${system.layout.user})`],
          ['socket', ctx.config.socketPath],
          ['daemon', daemon ? p.green('running') : p.red('not running (sudo systemctl start aivaultd)')],
          ['isolation', p.green(iso.summary)],
        ],
        p,
      ),
  };
}

export async function status(ctx: CliContext): Promise<CommandResult> {
  if (ctx.config.system) return systemStatus(ctx);
  const vault = await Vault.open(ctx.config);
  const s = await vault.status();
  const daemon = await tellDaemon(ctx.config, { type: 'status' }).catch(() => undefined);
  const devRequested = hasDevRequests(ctx.config.devRequested);
  const iso = isolationOf(ctx.config, s.provider);
  // One truth: a passphrase vault is unlocked when aivaultd holds its key, even though this process
  // does not; `lockedIn` says where the key is.
  const unlockedInDaemon = s.locked && daemon?.locked === false;
  const json = {
    ...s,
    locked: s.locked && !unlockedInDaemon,
    keyHeldBy: !s.locked ? 'this process' : unlockedInDaemon ? 'aivaultd' : null,
    isolation: iso,
    devOverridesRequested: devRequested,
    devOverridesHonoured: s.dev && devRequested,
    daemon,
  };
  return {
    json,
    human: (p) =>
      renderFields(
        [
          ['provider', p.bold(s.provider)],
          ['vault', s.root],
          ['state', stateLabel(s.locked, daemon?.locked, p)],
          ['kek fingerprint', s.kekFingerprint ?? p.dim('(locked)')],
          ['secrets', String(s.secretCount)],
          ...(s.provider === 'passphrase'
            ? [
                [
                  'policy seal',
                  s.policySealed
                    ? p.green('sealed')
                    : p.yellow('not sealed (legacy vault: run `aivault reseal-policy`)'),
                ] as [string, string],
              ]
            : []),
          [
            'dev mode',
            s.dev
              ? p.yellow(devRequested ? 'enabled — AIVAULT_DEV_* overrides are honoured' : 'enabled')
              : devRequested
                ? p.dim('off — AIVAULT_DEV_* overrides are ignored')
                : p.dim('off'),
          ],
          ['socket', ctx.config.socketPath],
          ['daemon', daemon ? p.green('running') : p.dim('not running')],
          ['isolation', iso.isolated ? p.green(iso.summary) : p.yellow(iso.summary)],
        ],
        p,
      ),
  };
}

export async function init(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const provider = optString(opts, 'provider') ?? 'file';
  let passphrase = optString(opts, 'passphrase');
  if (provider === 'passphrase' && passphrase === undefined)
    passphrase = await promptHidden(ctx, 'New passphrase');
  const vault = await Vault.init(ctx.config, {
    provider: provider as 'file' | 'env' | 'passphrase' | 'keychain' | 'macos-keychain',
    filePath: optString(opts, 'filePath'),
    envVar: optString(opts, 'envVar'),
    passphrase,
    keychainService: optString(opts, 'keychainService'),
    keychainAccount: optString(opts, 'keychainAccount'),
    dev: optBool(opts, 'dev'),
    force: optBool(opts, 'force'),
  });
  const s = await vault.status();
  const iso = isolationOf(ctx.config, s.provider);
  return {
    json: { ...s, isolation: iso },
    human: (p) =>
      `${p.green('Vault initialized')} (${p.bold(s.provider)}${s.dev ? p.yellow(', dev mode') : ''}) at ${s.root}\n${p.yellow(`Isolation: ${iso.summary}`)}`,
  };
}

export async function unlock(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const vault = await Vault.open(ctx.config);
  const before = await vault.status();
  if (before.provider !== 'passphrase') {
    return { json: before, human: (p) => p.dim(`The ${before.provider} provider needs no unlock.`) };
  }
  let passphrase = optString(opts, 'passphrase');
  if (optBool(opts, 'passphraseStdin')) {
    if (passphrase !== undefined)
      throw new AivaultError('usage', 'give --passphrase or --passphrase-stdin, not both');
    passphrase = (await readAllStdin(ctx.stdin)).split(/\r?\n/)[0] ?? '';
  }
  passphrase ??= await promptHidden(ctx, 'Passphrase');
  await vault.unlock(passphrase); // verifies the passphrase locally first: a wrong one never reaches the daemon
  // Start it if needed, then check the socket is really our daemon's before the passphrase goes out.
  await tellDaemon(ctx.config, { type: 'status' }, { autostart: true });
  await assertTrustedDaemon(ctx.config);
  await tellDaemon(ctx.config, { type: 'unlock', passphrase });
  const s = await vault.status();
  return { json: s, human: (p) => p.green('Vault unlocked in aivaultd.') };
}

export async function lock(ctx: CliContext): Promise<CommandResult> {
  if (ctx.config.system) {
    // Only the daemon can read a system vault; it refuses lock on the caller socket.
    const data = await tellDaemon(ctx.config, { type: 'lock' });
    return { json: data, human: (p) => p.green('Vault locked.') };
  }
  const vault = await Vault.open(ctx.config);
  await vault.lock();
  await tellDaemon(ctx.config, { type: 'lock' }).catch(() => undefined);
  const s = await vault.status();
  return { json: { ...s, locked: true }, human: (p) => p.green('Vault locked.') };
}

export async function rotateMaster(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const newKey = optString(opts, 'newKey');
  const newPassphrase = optString(opts, 'newPassphrase');
  if ((newKey === undefined) === (newPassphrase === undefined)) {
    throw new AivaultError('usage', 'give exactly one of --new-key or --new-passphrase');
  }
  const vault = await openVaultForWrite(ctx);
  // A running aivaultd notices the new vault.json and reloads the key on its next request.
  await vault.rotateMaster({ newKey, newPassphrase });
  const s = await vault.status();
  return {
    json: s,
    human: (p) =>
      `${p.green('Master key rotated.')} New KEK fingerprint ${p.bold(s.kekFingerprint ?? '(locked)')}`,
  };
}

/**
 * `aivault reseal-policy`: seal a legacy passphrase vault's policy files (or verify and re-write a sealed
 * vault's). An operator write: in aivaultd when one serves the vault, with the passphrase as proof.
 */
export async function resealPolicy(ctx: CliContext): Promise<CommandResult> {
  const vault = await openVaultForWrite(ctx);
  const r = await vault.resealPolicy();
  return {
    json: r,
    human: (p) =>
      r.newlySealed
        ? `${p.green('Policy files sealed.')} Edits made outside aivault now fail closed (storage_corrupt).`
        : p.green('Policy files verified and re-sealed.'),
  };
}

/** `aivault audit verify`: every day file's seals and per-writer chains (src/stores/audit/audit-chain.ts). */
async function auditVerify(ctx: CliContext): Promise<CommandResult> {
  const vault = await openVaultForWrite(ctx); // the audit key is a subkey of the KEK
  let key: Uint8Array | undefined;
  try {
    key = vault.auditKey();
  } finally {
    vault.close();
  }
  if (!key) throw new AivaultError('vault_unavailable', 'the vault is locked: run `aivault unlock`');
  const r = await new AuditLog(ctx.config, vaultPaths(ctx.config)).verify(key);
  if (r.ok) {
    const legacy = r.legacy > 0 ? ` (${r.legacy} older unsealed events not verifiable)` : '';
    return {
      json: r,
      human: (p) => `${p.green(`${r.events} events verified`)} in ${r.files} day file(s)${legacy}`,
    };
  }
  return {
    json: r,
    human: (p) => p.red(`${r.file}:${r.line}: ${r.reason} (${r.events} events verified before it)`),
    exitCode: 1,
  };
}

/** `aivault audit --fleet`: the central table (src/stores/fleet/audit-store.ts; pg is loaded only here). */
async function fleetAudit(
  ctx: CliContext,
  opts: CommandOptions,
  limit: number,
  beforeTsMs: number | undefined,
): Promise<FleetAuditEvent[]> {
  const { parseFleetSettings } = await import('../../stores/fleet/config.js');
  const url = optString(opts, 'fleetAuditPostgres');
  const id = optString(opts, 'fleetId');
  const fleet = parseFleetSettings(
    {},
    {
      ...ctx.config.fleet,
      ...(url !== undefined ? { auditPostgresUrl: url } : {}),
      ...(id !== undefined ? { id } : {}),
    },
  );
  if (!fleet.auditPostgresUrl) {
    throw new AivaultError(
      'usage',
      'audit --fleet needs --fleet-audit-postgres <url> (or AIVAULT_FLEET_AUDIT_POSTGRES)',
    );
  }
  const { AuditStore } = await import('../../stores/fleet/audit-store.js');
  const store = new AuditStore({ url: fleet.auditPostgresUrl });
  const node = optString(opts, 'fleetNode');
  try {
    return await store.list({
      fleetId: fleet.id,
      limit,
      ...(beforeTsMs !== undefined ? { beforeTsMs } : {}),
      ...(node !== undefined ? { node } : {}),
    });
  } catch (err) {
    if (err instanceof AivaultError) throw err;
    const { redactUrl } = await import('../../stores/fleet/config.js');
    const why = (err as { code?: string }).code ?? (err as Error).message;
    throw new AivaultError(
      'upstream_unreachable',
      `fleet audit: PostgreSQL at ${redactUrl(fleet.auditPostgresUrl)} failed (${why})`,
    );
  } finally {
    await store.close();
  }
}

export async function audit(
  ctx: CliContext,
  pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  if (pos[0] === 'verify') return auditVerify(ctx);
  if (pos[0] !== undefined) {
    throw new AivaultError('usage', `unknown audit action "${pos[0].slice(0, 40)}" (expected: verify)`);
  }
  const limit = parseCount(optString(opts, 'limit') ?? '200', '--limit');
  const before = optString(opts, 'beforeTsMs');
  const beforeTsMs = before === undefined ? undefined : parseCount(before, '--before-ts-ms');
  const events: readonly (AuditEvent & { node?: string })[] =
    opts.fleet === true
      ? await fleetAudit(ctx, opts, limit, beforeTsMs)
      : await new AuditLog(ctx.config, vaultPaths(ctx.config)).list({ limit, beforeTsMs });
  return {
    json: events,
    human: (p) =>
      events.length === 0
        ? p.dim('No audit events.')
        : renderTable(
            ['time', 'event', 'subject', 'detail'],
            // Events carry caller-influenced text (ids, paths, notes): escaped here, before painting,
            // so even colour codes from the log are shown as text.
            events.map((e) => [
              p.dim(new Date(e.tsMs).toISOString()),
              escapeControl(e.kind),
              escapeControl(e.capability ?? e.secretName ?? e.secretId ?? ''),
              [
                e.method,
                e.host,
                e.path,
                e.status !== undefined ? String(e.status) : undefined,
                e.errorCode,
                e.clientIp !== undefined ? `from ${e.clientIp}` : undefined,
                e.node !== undefined ? `on ${e.node}` : undefined,
                e.note,
              ]
                .filter((x) => x !== undefined && x !== '')
                .map((x) => escapeControl(String(x)))
                .join(' '),
            ]),
            p,
          ),
  };
}

/**
 * `aivault secrets …`: metadata-only listings, and create/rotate/import that encrypt values in-process.
 * Creating a registry-claimed name pins the secret to its provider and auto-provisions the credential.
 */
import { AivaultError } from '../../core/errors.js';
import type { Scope } from '../../core/broker/types.js';
import { Vault, type SecretMeta } from '../../stores/vault/index.js';
import type { CliContext, CommandOptions, CommandResult } from '../context.js';
import { optBool, optList, optString } from '../context.js';
import { renderTable, type Painter } from '../output.js';
import { openVaultForWrite, readAllStdin, readSecretValue } from '../secret-input.js';
import { afterSecretCreated, afterSecretDeleted, type ProvisionOutcome } from '../provisioning.js';

export function scopeFrom(opts: CommandOptions): Scope {
  const kind = optString(opts, 'scope') ?? 'global';
  const workspaceId = optString(opts, 'workspaceId');
  const groupId = optString(opts, 'groupId');
  if (kind === 'global') {
    if (workspaceId !== undefined || groupId !== undefined) {
      throw new AivaultError('usage', '--workspace-id/--group-id need --scope workspace or group');
    }
    return { kind: 'global' };
  }
  if (kind === 'workspace') {
    if (!workspaceId) throw new AivaultError('usage', '--scope workspace needs --workspace-id');
    if (groupId !== undefined) throw new AivaultError('usage', '--group-id needs --scope group');
    return { kind: 'workspace', workspaceId };
  }
  if (kind === 'group') {
    if (!workspaceId || !groupId)
      throw new AivaultError('usage', '--scope group needs --workspace-id and --group-id');
    return { kind: 'group', workspaceId, groupId };
  }
  throw new AivaultError('usage', '--scope must be global, workspace or group');
}

export function describeScope(scope: Scope): string {
  if (scope.kind === 'global') return 'global';
  if (scope.kind === 'workspace') return `workspace:${scope.workspaceId}`;
  return `group:${scope.workspaceId}/${scope.groupId}`;
}

function secretRow(s: SecretMeta, p: Painter): string[] {
  return [
    p.bold(s.name),
    p.dim(s.id),
    describeScope(s.scope),
    s.pinnedProvider ? p.cyan(s.pinnedProvider) : p.dim('-'),
    s.aliases.length ? s.aliases.join(',') : p.dim('-'),
    s.attachedGroups.length
      ? s.attachedGroups.map((g) => `${g.workspaceId}/${g.groupId}`).join(',')
      : p.dim('-'),
    new Date(s.updatedAtMs).toISOString().slice(0, 19).replace('T', ' '),
  ];
}

/** `secrets list` filters: every given field must match; nothing given lists everything. */
export interface SecretListFilter {
  readonly kind?: Scope['kind'];
  readonly workspaceId?: string;
  readonly groupId?: string;
}

export function listFilterFrom(opts: CommandOptions): SecretListFilter {
  const kind = optString(opts, 'scope') as Scope['kind'] | undefined;
  const workspaceId = optString(opts, 'workspaceId');
  const groupId = optString(opts, 'groupId');
  if (kind === 'global' && (workspaceId !== undefined || groupId !== undefined))
    throw new AivaultError('usage', '--scope global takes no --workspace-id/--group-id');
  if (kind === 'workspace' && groupId !== undefined)
    throw new AivaultError('usage', '--group-id needs --scope group (or no --scope)');
  if (groupId !== undefined && workspaceId === undefined)
    throw new AivaultError('usage', '--group-id needs --workspace-id');
  return {
    ...(kind !== undefined ? { kind } : {}),
    ...(workspaceId !== undefined ? { workspaceId } : {}),
    ...(groupId !== undefined ? { groupId } : {}),
  };
}

export function matchesListFilter(scope: Scope, filter: SecretListFilter): boolean {
  if (filter.kind !== undefined && scope.kind !== filter.kind) return false;
  if (filter.workspaceId !== undefined && scope.workspaceId !== filter.workspaceId) return false;
  if (filter.groupId !== undefined && scope.groupId !== filter.groupId) return false;
  return true;
}

export async function list(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const filter = listFilterFrom(opts);
  const vault = await Vault.open(ctx.config);
  const secrets = (await vault.listSecrets()).filter((s) => matchesListFilter(s.scope, filter));
  const filtered = Object.keys(filter).length > 0;
  return {
    json: secrets,
    human: (p) =>
      secrets.length === 0
        ? p.dim(
            filtered
              ? 'No secrets match this filter (run aivault secrets list without filters to see all).'
              : 'No secrets. Create one with: aivault secrets create --name OPENAI_API_KEY --value-stdin',
          )
        : renderTable(
            ['name', 'id', 'scope', 'pinned', 'aliases', 'groups', 'updated'],
            secrets.map((s) => secretRow(s, p)),
            p,
          ),
  };
}

function provisionLines(outcome: ProvisionOutcome | undefined, p: Painter): string[] {
  if (!outcome) return [];
  if (outcome.kind === 'provisioned') {
    return [
      `${p.green('→')} Credential auto-provisioned: ${p.bold(outcome.credentialId)} (${outcome.capabilityCount} capabilities enabled)`,
    ];
  }
  if (outcome.kind === 'waiting') {
    return [
      `${p.yellow('→')} Waiting for ${outcome.missing.join(', ')} to complete ${outcome.provider} credential`,
    ];
  }
  return [`${p.dim('→')} Credential ${outcome.credentialId} already uses this provider`];
}

export async function create(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const name = optString(opts, 'name') ?? '';
  const scope = scopeFrom(opts);
  const value = await readSecretValue(ctx, opts);
  const { registry } = await import('../../core/registry/index.js');
  const claim = registry.claimFor(name);
  const vault = await openVaultForWrite(ctx);
  const meta = await vault.createSecret({
    name,
    value,
    scope,
    aliases: optList(opts, 'alias'),
    pinnedProvider: claim?.provider,
  });
  const outcome = claim ? await afterSecretCreated(ctx.config, vault, meta) : undefined;
  return {
    json: { secret: meta, provisioning: outcome ?? null },
    human: (p) =>
      [
        `${p.green('Secret created:')} ${p.bold(meta.name)} ${p.dim(meta.id)}${
          meta.pinnedProvider ? ` (pinned to provider: ${p.cyan(meta.pinnedProvider)})` : ''
        }`,
        ...provisionLines(outcome, p),
      ].join('\n'),
  };
}

export async function update(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const vault = await Vault.open(ctx.config);
  const target = await vault.getSecret(optString(opts, 'id') ?? '');
  const name = optString(opts, 'name');
  if (optBool(opts, 'clearAliases') && opts.alias !== undefined)
    throw new AivaultError('usage', 'give --alias or --clear-aliases, not both');
  const aliases = optBool(opts, 'clearAliases')
    ? []
    : opts.alias === undefined
      ? undefined
      : optList(opts, 'alias');
  if (name === undefined && aliases === undefined)
    throw new AivaultError('usage', 'nothing to update: give --name, --alias or --clear-aliases');
  const meta = await vault.updateSecret(target.id, { name, aliases });
  return { json: meta, human: (p) => `${p.green('Secret updated:')} ${p.bold(meta.name)} ${p.dim(meta.id)}` };
}

export async function rotate(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const value = await readSecretValue(ctx, opts, 'New secret value');
  const vault = await openVaultForWrite(ctx);
  const target = await vault.getSecret(optString(opts, 'id') ?? '');
  const meta = await vault.rotateSecret(target.id, value);
  return { json: meta, human: (p) => `${p.green('Secret rotated:')} ${p.bold(meta.name)} ${p.dim(meta.id)}` };
}

export async function remove(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const vault = await Vault.open(ctx.config);
  const target = await vault.getSecret(optString(opts, 'id') ?? '');
  const meta = await vault.deleteSecret(target.id);
  const removed = await afterSecretDeleted(ctx.config, vault, meta);
  return {
    json: { secret: meta, removedCredentials: removed },
    human: (p) =>
      [
        `${p.green('Secret deleted:')} ${p.bold(meta.name)} ${p.dim(meta.id)}`,
        ...removed.map((id) => `${p.dim('→')} Credential removed: ${id}`),
      ].join('\n'),
  };
}

async function groupChange(ctx: CliContext, opts: CommandOptions, attach: boolean): Promise<CommandResult> {
  // Attachments are bound into the value's AAD, so changing them re-seals the value: it needs the KEK.
  const vault = await openVaultForWrite(ctx);
  const target = await vault.getSecret(optString(opts, 'id') ?? '');
  const workspaceId = optString(opts, 'workspaceId') ?? '';
  const groupId = optString(opts, 'groupId') ?? '';
  const meta = attach
    ? await vault.attachGroup(target.id, workspaceId, groupId)
    : await vault.detachGroup(target.id, workspaceId, groupId);
  return {
    json: meta,
    human: (p) =>
      `${p.green(attach ? 'Attached' : 'Detached')} ${p.bold(meta.name)} ${attach ? 'to' : 'from'} group ${workspaceId}/${groupId}`,
  };
}

export const attachGroup = (
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> => groupChange(ctx, opts, true);
export const detachGroup = (
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> => groupChange(ctx, opts, false);

export function parseEntry(entry: string): { name: string; value: string } {
  const eq = entry.indexOf('=');
  if (eq <= 0) throw new AivaultError('usage', 'each entry must look like KEY=VALUE');
  return { name: entry.slice(0, eq).trim(), value: entry.slice(eq + 1) };
}

export async function importEntries(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const scope = scopeFrom(opts);
  const raw = optList(opts, 'entry');
  if (optBool(opts, 'fromStdin')) {
    for (const line of (await readAllStdin(ctx.stdin)).split(/\r?\n/)) {
      const trimmed = line.trim();
      if (trimmed && !trimmed.startsWith('#')) raw.push(trimmed.replace(/^export\s+/, ''));
    }
  }
  if (raw.length === 0)
    throw new AivaultError('usage', 'nothing to import: give --entry KEY=VALUE or --from-stdin');
  const entries = raw.map(parseEntry);
  const { registry } = await import('../../core/registry/index.js');
  const vault = await openVaultForWrite(ctx);
  const created: SecretMeta[] = [];
  const outcomes: ProvisionOutcome[] = [];
  for (const entry of entries) {
    const claim = registry.claimFor(entry.name);
    const meta = await vault.createSecret({ ...entry, scope, pinnedProvider: claim?.provider });
    created.push(meta);
    if (claim) {
      const outcome = await afterSecretCreated(ctx.config, vault, meta);
      if (outcome) outcomes.push(outcome);
    }
  }
  return {
    json: { secrets: created, provisioning: outcomes },
    human: (p) =>
      [
        `${p.green('Imported')} ${created.length} secret${created.length === 1 ? '' : 's'}: ${created.map((s) => s.name).join(', ')}`,
        ...outcomes.flatMap((o) => provisionLines(o, p)),
      ].join('\n'),
  };
}

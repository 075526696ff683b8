/**
 * `aivault token mint|list|revoke` and `aivault token operator create`: network tokens for the loopback
 * HTTP listener (docs/http-api.md). Tokens are printed once; the vault stores only their SHA-256.
 */
import { AivaultError } from '../../core/errors.js';
import type { CliContext, CommandOptions, CommandResult } from '../context.js';
import { optList, optString } from '../context.js';
import { renderTable } from '../output.js';
import { loadBrokerView } from './broker-view.js';
import {
  createOperatorToken,
  listTokens,
  mintProxyToken,
  parseTtl,
  revokeToken,
  type MintProxyInput,
} from '../../stores/tokens/tokens.js';

/** Check the scope names real capabilities/providers and the credential exists (fail early, not at use). */
export async function checkScope(ctx: CliContext, input: MintProxyInput): Promise<void> {
  const view = await loadBrokerView(ctx.config);
  for (const c of input.capabilities) {
    if (c.endsWith('/*')) {
      const provider = c.slice(0, -2);
      const known =
        view.registry.getProvider(provider) !== undefined ||
        [...view.snapshot.capabilities.values()].some((x) => x.provider === provider);
      if (!known) throw new AivaultError('capability_not_found', `no provider ${provider}`);
    } else if (!view.registry.getCapability(c) && !view.snapshot.capabilities.has(c)) {
      throw new AivaultError('capability_not_found', `unknown capability ${c}`);
    }
  }
  if (input.credential !== undefined && !view.snapshot.credentials.has(input.credential)) {
    throw new AivaultError('credential_not_found', `no credential ${input.credential}`);
  }
}

export function mintInputFromFlags(opts: CommandOptions, capabilities: readonly string[]): MintProxyInput {
  const ttl = optString(opts, 'ttl');
  const credential = optString(opts, 'credential');
  const workspaceId = optString(opts, 'workspaceId');
  const groupId = optString(opts, 'groupId');
  const label = optString(opts, 'label');
  const tunnelHosts = optList(opts, 'tunnelHost').map((h) => h.toLowerCase());
  return {
    capabilities,
    ...(credential !== undefined ? { credential } : {}),
    ...(workspaceId !== undefined ? { workspaceId } : {}),
    ...(groupId !== undefined ? { groupId } : {}),
    ...(ttl !== undefined ? { ttlMs: parseTtl(ttl) } : {}),
    ...(label !== undefined ? { label } : {}),
    ...(tunnelHosts.length > 0 ? { tunnelHosts } : {}),
  };
}

export async function mint(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const capabilities = optList(opts, 'capability');
  if (capabilities.length === 0) {
    throw new AivaultError('usage', 'token mint needs --capability <id|provider/*> (repeatable)');
  }
  const input = mintInputFromFlags(opts, capabilities);
  await checkScope(ctx, input);
  const { token, info } = await mintProxyToken(ctx.config.vaultDir, input);
  return {
    json: { token, ...info },
    human: (p) =>
      [
        token,
        p.dim(
          `proxy token ${info.id}: ${info.capabilities.join(', ')}${info.credential ? ` (credential ${info.credential})` : ''}, expires ${new Date(info.expiresAtMs).toISOString()}`,
        ),
      ].join('\n'),
  };
}

export async function operatorCreate(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const ttl = optString(opts, 'ttl');
  const name = optString(opts, 'name');
  const { token, info } = await createOperatorToken(ctx.config.vaultDir, {
    ...(name !== undefined ? { name } : {}),
    ...(ttl !== undefined ? { ttlMs: parseTtl(ttl) } : {}),
  });
  return {
    json: { token, ...info },
    human: (p) =>
      [
        token,
        p.dim(
          `operator token ${info.id} — shown once; it manages credentials, capabilities and tokens over HTTP.`,
        ),
      ].join('\n'),
  };
}

export async function list(ctx: CliContext): Promise<CommandResult> {
  const tokens = await listTokens(ctx.config.vaultDir);
  return {
    json: tokens,
    human: (p) =>
      tokens.length === 0
        ? p.dim('No tokens.')
        : renderTable(
            ['id', 'kind', 'scope', 'credential', 'expires'],
            tokens.map((t) => [
              p.bold(t.id),
              t.kind,
              t.kind === 'proxy' ? t.capabilities.join(',') : (t.name ?? ''),
              t.kind === 'proxy' ? (t.credential ?? '') : '',
              t.expiresAtMs !== undefined ? new Date(t.expiresAtMs).toISOString() : 'never',
            ]),
            p,
          ),
  };
}

export async function revoke(ctx: CliContext, pos: readonly string[]): Promise<CommandResult> {
  const id = pos[0] ?? '';
  await revokeToken(ctx.config.vaultDir, id);
  return { json: { id, revoked: true }, human: (p) => `${p.green('Token revoked:')} ${p.bold(id)}` };
}

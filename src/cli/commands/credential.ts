/** `aivault credential create|list|delete`: flags → AuthSpec (custom providers) and catalog mutations. */
import { AivaultError } from '../../core/errors.js';
import type { AuthSpec } from '../../core/registry/types.js';
import type { Credential } from '../../core/broker/types.js';
import { createCredential, deleteCredential } from '../../stores/catalog/index.js';
import type { CliContext, CommandOptions, CommandResult } from '../context.js';
import { optBool, optList, optString } from '../context.js';
import { renderTable } from '../output.js';
import { loadBrokerView } from './broker-view.js';

function pairs(values: readonly string[], flag: string): [string, string][] {
  return values.map((raw) => {
    const eq = raw.indexOf('=');
    if (eq <= 0) throw new AivaultError('usage', `${flag} values must look like NAME=template`);
    return [raw.slice(0, eq).trim(), raw.slice(eq + 1)];
  });
}

function required(opts: CommandOptions, key: string, flag: string, auth: string): string {
  const v = optString(opts, key);
  if (v === undefined || v === '') throw new AivaultError('usage', `--auth ${auth} needs ${flag}`);
  return v;
}

/** Build the auth spec a custom credential asks for. Exactly one strategy, every needed flag present. */
export function authSpecFromFlags(opts: CommandOptions): AuthSpec | undefined {
  const type = optString(opts, 'auth');
  switch (type) {
    case undefined:
      return undefined;
    case 'header':
      return {
        header: {
          header_name: optString(opts, 'headerName') ?? 'authorization',
          value_template: optString(opts, 'valueTemplate') ?? 'Bearer {{secret}}',
        },
      };
    case 'query': {
      const valueTemplate = optString(opts, 'valueTemplate');
      return {
        query: {
          param_name: required(opts, 'queryParam', '--query-param', type),
          ...(valueTemplate ? { value_template: valueTemplate } : {}),
        },
      };
    }
    case 'path':
      return {
        path: { prefix_template: required(opts, 'pathPrefixTemplate', '--path-prefix-template', type) },
      };
    case 'basic': {
      const username = optString(opts, 'usernameTemplate');
      const password = optString(opts, 'passwordTemplate');
      return {
        basic: {
          ...(username ? { username_template: username } : {}),
          ...(password ? { password_template: password } : {}),
        },
      };
    }
    case 'multi-header': {
      const entries = pairs(optList(opts, 'authHeader'), '--auth-header');
      if (!entries.length)
        throw new AivaultError('usage', '--auth multi-header needs at least one --auth-header');
      return {
        multi_header: entries.map(([header_name, value_template]) => ({ header_name, value_template })),
      };
    }
    case 'multi-query': {
      const entries = pairs(optList(opts, 'authQuery'), '--auth-query');
      if (!entries.length)
        throw new AivaultError('usage', '--auth multi-query needs at least one --auth-query');
      return { multi_query: entries.map(([param_name, value_template]) => ({ param_name, value_template })) };
    }
    case 'oauth2': {
      const grant = optString(opts, 'grantType') ?? 'refresh_token';
      if (grant !== 'refresh_token' && grant !== 'client_credentials') {
        throw new AivaultError('usage', '--grant-type must be refresh_token or client_credentials');
      }
      // `--scope` is the reference spelling; `--oauth-scope` stays as an alias.
      const scopes = [...optList(opts, 'scope'), ...optList(opts, 'oauthScope')];
      return {
        oauth2: {
          grant_type: grant,
          token_endpoint: required(opts, 'tokenEndpoint', '--token-endpoint', type),
          ...(scopes.length ? { scopes } : {}),
        },
      };
    }
    case 'aws-sigv4':
      return {
        aws_sigv4: {
          service: required(opts, 'awsService', '--aws-service', type),
          region: required(opts, 'awsRegion', '--aws-region', type),
        },
      };
    case 'hmac': {
      const algorithm = optString(opts, 'hmacAlgorithm') ?? 'sha256';
      if (algorithm !== 'sha256' && algorithm !== 'sha512' && algorithm !== 'sha1') {
        throw new AivaultError('usage', '--hmac-algorithm must be sha256, sha512 or sha1');
      }
      const keyEncoding = optString(opts, 'hmacKeyEncoding');
      if (keyEncoding !== undefined && keyEncoding !== 'utf8' && keyEncoding !== 'base64') {
        throw new AivaultError('usage', '--hmac-key-encoding must be utf8 or base64');
      }
      return {
        hmac: {
          algorithm,
          header_name: required(opts, 'headerName', '--header-name', type),
          value_template: optString(opts, 'valueTemplate') ?? '{{signature}}',
          ...(keyEncoding === 'base64' ? { key_encoding: 'base64' as const } : {}),
        },
      };
    }
    case 'mtls':
      return { mtls: {} };
    default:
      throw new AivaultError('usage', `unknown --auth ${type}`);
  }
}

/** `--secret-ref vault:secret:<id>` once, or `placeholder=vault:secret:<id>` for multi-secret credentials. */
export function secretRefsFromFlags(values: readonly string[]): {
  secretRef?: string;
  secretRefs?: Record<string, string>;
} {
  if (values.length === 0)
    throw new AivaultError('usage', 'credential create needs --secret-ref vault:secret:<id>');
  if (values.length === 1 && !/^[A-Za-z_][A-Za-z0-9_]*=/.test(values[0] ?? ''))
    return { secretRef: values[0] };
  const refs: Record<string, string> = {};
  for (const raw of values) {
    const eq = raw.indexOf('=');
    if (eq <= 0)
      throw new AivaultError(
        'usage',
        'with several --secret-ref values each must be placeholder=vault:secret:<id>',
      );
    refs[raw.slice(0, eq)] = raw.slice(eq + 1);
  }
  return { secretRefs: refs };
}

export async function create(
  ctx: CliContext,
  pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const id = pos[0] ?? '';
  const view = await loadBrokerView(ctx.config);
  const auth = authSpecFromFlags(opts);
  const hosts = optList(opts, 'host');
  // A registry AWS provider in another region: the registry hosts are relabelled, the signer follows.
  const awsRegion = auth === undefined ? optString(opts, 'awsRegion') : undefined;
  const workspaceId = optString(opts, 'workspaceId');
  const groupId = optString(opts, 'groupId');
  // Scopes would otherwise be dropped silently (registry providers take their auth from the registry).
  if (
    (optList(opts, 'scope').length || optList(opts, 'oauthScope').length) &&
    optString(opts, 'auth') !== 'oauth2'
  )
    throw new AivaultError('usage', '--scope/--oauth-scope are OAuth2 scopes: they need --auth oauth2');
  const credential = await createCredential(
    view.paths,
    view.registry,
    {
      id,
      provider: optString(opts, 'provider') ?? '',
      ...secretRefsFromFlags(optList(opts, 'secretRef')),
      ...(auth ? { auth } : {}),
      ...(hosts.length ? { hosts } : {}),
      ...(workspaceId !== undefined ? { workspaceId } : {}),
      ...(groupId !== undefined ? { groupId } : {}),
      ...(awsRegion !== undefined ? { params: { region: awsRegion } } : {}),
    },
    { secrets: view.secrets, allowNonDefaultPorts: view.allowNonDefaultPorts },
  );
  return {
    json: credential,
    human: (p) =>
      `${p.green('Credential created:')} ${p.bold(credential.id)} (${credential.provider} → ${credential.hosts.join(', ')})${
        credential.workspaceId !== undefined ? ` for ${contextLabel(credential)}` : ''
      }`,
  };
}

function contextLabel(c: Credential): string {
  if (c.workspaceId === undefined) return 'any';
  return c.groupId === undefined ? `workspace:${c.workspaceId}` : `group:${c.workspaceId}/${c.groupId}`;
}

export async function list(ctx: CliContext): Promise<CommandResult> {
  const view = await loadBrokerView(ctx.config);
  const credentials = [...view.snapshot.credentials.values()].sort((a, b) => a.id.localeCompare(b.id));
  const names = new Map(view.secrets.map((s) => [s.id, s.name]));
  return {
    json: credentials,
    human: (p) =>
      credentials.length === 0
        ? p.dim(
            'No credentials. Store a registry secret (aivault secrets create --name OPENAI_API_KEY …) to provision one.',
          )
        : renderTable(
            ['id', 'provider', 'auth', 'hosts', 'secrets', 'context', 'source'],
            credentials.map((c) => [
              p.bold(c.id),
              c.provider,
              Object.keys(c.auth)[0] ?? '?',
              c.hosts.join(','),
              Object.values(c.secretRefs)
                .map((sid) => names.get(sid) ?? p.red(`missing:${sid}`))
                .join(','),
              c.workspaceId === undefined ? p.dim('any') : contextLabel(c),
              c.source === 'registry' ? p.cyan('registry') : 'custom',
            ]),
            p,
          ),
  };
}

export async function remove(
  ctx: CliContext,
  pos: readonly string[],
  opts: CommandOptions = {},
): Promise<CommandResult> {
  const id = pos[0] ?? '';
  const view = await loadBrokerView(ctx.config);
  const result = await deleteCredential(view.paths, id, { cascade: optBool(opts, 'cascade') });
  return {
    json: { id, ...result },
    human: (p) =>
      [
        `${p.green('Credential deleted:')} ${p.bold(id)}`,
        ...result.removedCapabilities.map((c) => `${p.dim('→')} Capability removed: ${c}`),
        ...result.orphanedCapabilities.map(
          (c) =>
            `${p.yellow('→')} Capability kept: ${c} (fails with credential_not_found until credential ${id} is recreated; delete it with: aivault capability delete ${c})`,
        ),
      ].join('\n'),
  };
}

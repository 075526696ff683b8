/**
 * `aivault capability …`: browse the compiled registry plus custom capabilities, create/delete custom
 * ones, set advanced policy, and manage bindings.
 */
import { AivaultError } from '../../core/errors.js';
import type { Capability, Scope } from '../../core/broker/types.js';
import {
  catalogPaths,
  readBrokerFile,
  bind as bindCapability,
  createCapability,
  deleteCapability,
  listBindings,
  setPolicy,
  unbind as unbindCapability,
} from '../../stores/catalog/index.js';
import type { CliContext, CommandOptions, CommandResult } from '../context.js';
import { optList, optString, parseCount } from '../context.js';
import { renderFields, renderTable } from '../output.js';
import { loadBrokerView } from './broker-view.js';
import { vaultPaths } from '../../stores/vault/paths.js';
import { describeScope, scopeFrom } from './secrets.js';

export async function list(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const view = await loadBrokerView(ctx.config);
  const onlyProvider = optString(opts, 'provider');
  const credentialsByProvider = new Map<string, string[]>();
  for (const c of view.snapshot.credentials.values()) {
    credentialsByProvider.set(c.provider, [...(credentialsByProvider.get(c.provider) ?? []), c.id]);
  }
  const all = [...view.snapshot.capabilities.values()]
    .filter((c) => onlyProvider === undefined || c.provider === onlyProvider)
    .sort((a, b) => a.id.localeCompare(b.id));
  const isReady = (c: Capability): boolean =>
    c.credentialId !== undefined
      ? view.snapshot.credentials.has(c.credentialId)
      : credentialsByProvider.has(c.provider);
  const ready = all.filter(isReady);
  const waiting = all.filter((c) => !isReady(c));
  const approvalOf = (id: string): { approval?: 'once' | 'always' } => {
    const a = view.snapshot.policies.get(id)?.approval;
    return a !== undefined ? { approval: a } : {};
  };
  const json = {
    ready: ready.map((c) => ({
      ...c,
      credentials: c.credentialId ? [c.credentialId] : (credentialsByProvider.get(c.provider) ?? []),
      ...approvalOf(c.id),
    })),
    needsCredential: waiting.map((c) => ({ ...c, ...approvalOf(c.id) })),
  };
  return {
    json,
    human: (p) => {
      const out: string[] = [p.bold(p.green(`Ready (${ready.length})`))];
      out.push(
        ready.length
          ? renderTable(
              ['capability', 'methods', 'host', 'paths'],
              ready.map((c) => [
                p.bold(c.id) +
                  (approvalOf(c.id).approval ? p.yellow(` (approval ${approvalOf(c.id).approval})`) : ''),
                c.allow.methods.join(','),
                c.allow.hosts.join(','),
                c.allow.pathPrefixes.join(' '),
              ]),
              p,
            )
          : p.dim(
              '  none yet — store a provider secret, e.g. aivault secrets create --name OPENAI_API_KEY --value-stdin',
            ),
      );
      out.push('', p.bold(p.yellow(`Needs a credential (${waiting.length})`)));
      const byProvider = new Map<string, string[]>();
      for (const c of waiting) byProvider.set(c.provider, [...(byProvider.get(c.provider) ?? []), c.id]);
      for (const [provider, ids] of byProvider) {
        const claims = Object.keys(view.registry.getProvider(provider)?.vaultSecrets ?? {});
        out.push(
          `  ${p.bold(provider)} ${p.dim(`(${ids.length})`)}${claims.length ? p.dim(` needs ${claims.join(' + ')}`) : ''}`,
          `    ${ids.map((id) => id.slice(provider.length + 1)).join(', ')}`,
        );
      }
      return out.join('\n');
    },
  };
}

export async function describe(ctx: CliContext, pos: readonly string[]): Promise<CommandResult> {
  const id = pos[0] ?? '';
  const { describeCapability } = await import('../../core/registry/index.js');
  const described = describeCapability(id);
  /** The operator's approval policy (needs the catalog; a registry capability may have none yet). */
  // broker.json only (verified like every policy read): no vault is opened or created for a describe.
  const approvalPolicy = async (): Promise<'once' | 'always' | undefined> => {
    try {
      const broker = await readBrokerFile(catalogPaths(vaultPaths(ctx.config).root).brokerJson);
      return broker.policies.find((p) => p.capabilityId === id)?.approval;
    } catch {
      return undefined; // describing a registry capability works without a (readable) vault
    }
  };
  if (described) {
    const approval = await approvalPolicy();
    return {
      json: approval !== undefined ? { ...described, approval } : described,
      human: (p) =>
        [
          renderFields(
            [
              ['capability', p.bold(described.id)],
              [
                'provider',
                described.displayName
                  ? `${described.provider} (${described.displayName})`
                  : described.provider,
              ],
              ...(described.summary ? ([['summary', described.summary]] as [string, string][]) : []),
              [
                'host',
                described.perTenantHost
                  ? `${described.host} ${p.dim('(bind your tenant host)')}`
                  : described.host,
              ],
              ['methods', described.methods.join(', ')],
              ['paths', described.pathPrefixes.join('  ')],
              ['auth', `${described.auth.type} — ${described.auth.detail}`],
              ['secrets', described.secrets.map((s) => s.name).join(', ') || p.dim('none')],
              ...(described.contentType ? ([['body', described.contentType]] as [string, string][]) : []),
              ...(described.docsUrl ? ([['docs', described.docsUrl]] as [string, string][]) : []),
              ...(approval !== undefined
                ? ([['approval', `${approval} (each call waits for the operator)`]] as [string, string][])
                : []),
            ],
            p,
          ),
          '',
          p.bold('Set up'),
          ...described.setup.map((l) => `  ${l}`),
          '',
          p.bold('Invoke'),
          ...described.invoke.map((l) => `  ${l}`),
        ].join('\n'),
    };
  }
  // Custom capability: describe from the catalog.
  const view = await loadBrokerView(ctx.config);
  const custom = view.snapshot.capabilities.get(id);
  if (!custom)
    throw new AivaultError(
      'capability_not_found',
      `no capability named ${id} (see: aivault capability list)`,
    );
  const approval = view.snapshot.policies.get(id)?.approval;
  return {
    json: approval !== undefined ? { ...custom, approval } : custom,
    human: (p) =>
      renderFields(
        [
          ['capability', p.bold(custom.id)],
          ...(approval !== undefined
            ? ([['approval', `${approval} (each call waits for the operator)`]] as [string, string][])
            : []),
          ['provider', custom.provider],
          ['credential', custom.credentialId ?? p.dim('-')],
          ['host', custom.allow.hosts.join(', ')],
          ['methods', custom.allow.methods.join(', ')],
          ['paths', custom.allow.pathPrefixes.join('  ')],
          [
            'invoke',
            `aivault invoke ${custom.id} --method ${custom.allow.methods[0] ?? 'GET'} --path ${custom.allow.pathPrefixes[0] ?? '/'}`,
          ],
        ],
        p,
      ),
  };
}

export async function create(
  ctx: CliContext,
  pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const view = await loadBrokerView(ctx.config);
  const host = optString(opts, 'host');
  const capability = await createCapability(
    view.paths,
    view.registry,
    {
      id: pos[0] ?? '',
      credentialId: optString(opts, 'credential') ?? '',
      methods: optList(opts, 'method').map((m) => m.toUpperCase()),
      pathPrefixes: optList(opts, 'path'),
      ...(host ? { host } : {}),
    },
    { allowNonDefaultPorts: view.allowNonDefaultPorts },
  );
  return {
    json: capability,
    human: (p) =>
      `${p.green('Capability created:')} ${p.bold(capability.id)} (${capability.allow.methods.join(',')} ${capability.allow.hosts[0]} ${capability.allow.pathPrefixes.join(' ')})`,
  };
}

export async function remove(ctx: CliContext, pos: readonly string[]): Promise<CommandResult> {
  const id = pos[0] ?? '';
  const view = await loadBrokerView(ctx.config);
  await deleteCapability(view.paths, view.registry, id);
  return { json: { id, deleted: true }, human: (p) => `${p.green('Capability deleted:')} ${p.bold(id)}` };
}

function optCount(opts: CommandOptions, key: string, flag: string): number | undefined {
  const raw = optString(opts, key);
  return raw === undefined ? undefined : parseCount(raw, flag);
}

export async function policySet(
  ctx: CliContext,
  pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const view = await loadBrokerView(ctx.config);
  const blocklist = optList(opts, 'responseBlock');
  const flag = optString(opts, 'capability');
  if (pos[0] !== undefined && flag !== undefined && pos[0] !== flag) {
    throw new AivaultError('usage', 'give the capability once: as the argument or with --capability');
  }
  const capabilityId = pos[0] ?? flag;
  if (capabilityId === undefined) throw new AivaultError('usage', 'which capability? policy set <id> …');
  const approval = optString(opts, 'approval');
  if (approval !== undefined && approval !== 'once' && approval !== 'always' && approval !== 'off') {
    throw new AivaultError('usage', '--approval must be once, always or off');
  }
  const policy = await setPolicy(view.paths, view.registry, {
    capabilityId,
    ...(approval !== undefined ? { approval } : {}),
    rateLimitPerMinute: optCount(opts, 'rateLimitPerMinute', '--rate-limit-per-minute'),
    maxRequestBodyBytes: optCount(opts, 'maxRequestBodyBytes', '--max-request-body-bytes'),
    maxResponseBodyBytes: optCount(opts, 'maxResponseBodyBytes', '--max-response-body-bytes'),
    ...(blocklist.length ? { responseBlocklist: blocklist } : {}),
  });
  return {
    json: policy,
    human: (p) =>
      renderFields(
        [
          ['capability', p.bold(policy.capabilityId)],
          ['rate limit / min', policy.rateLimitPerMinute?.toString() ?? p.dim('none')],
          ['max request body', policy.maxRequestBodyBytes?.toString() ?? p.dim('none')],
          ['max response body', policy.maxResponseBodyBytes?.toString() ?? p.dim('none')],
          ['response blocklist', policy.responseBlocklist?.join(', ') || p.dim('none')],
          ['approval', policy.approval ?? p.dim('off')],
        ],
        p,
      ),
  };
}

/** Scope flags are optional for bindings listing/unbinding: only filter when given explicitly. */
function optionalScope(opts: CommandOptions): Scope | undefined {
  if (optString(opts, 'workspaceId') === undefined && opts.scope === 'global') return undefined;
  return scopeFrom(opts);
}

export async function bindings(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const view = await loadBrokerView(ctx.config);
  const capabilityId = optString(opts, 'capability');
  const consumer = optString(opts, 'consumer');
  const scope = optionalScope(opts);
  const rows = await listBindings(view.paths, {
    ...(capabilityId ? { capabilityId } : {}),
    ...(consumer ? { consumer } : {}),
    ...(scope ? { scope } : {}),
  });
  return {
    json: rows,
    human: (p) =>
      rows.length === 0
        ? p.dim('No bindings (registry secrets bind automatically).')
        : renderTable(
            ['capability', 'secret', 'scope', 'consumer'],
            rows.map((b) => [
              p.bold(b.capabilityId),
              b.secretRef,
              describeScope(b.scope),
              b.consumer ?? p.dim('-'),
            ]),
            p,
          ),
  };
}

export async function bind(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const view = await loadBrokerView(ctx.config);
  const consumer = optString(opts, 'consumer');
  const binding = await bindCapability(
    view.paths,
    view.registry,
    {
      capabilityId: optString(opts, 'capability') ?? '',
      secretRef: optString(opts, 'secretRef') ?? '',
      scope: scopeFrom(opts),
      ...(consumer ? { consumer } : {}),
    },
    { secrets: view.secrets },
  );
  return {
    json: binding,
    human: (p) =>
      `${p.green('Bound')} ${p.bold(binding.capabilityId)} → ${binding.secretRef} (${describeScope(binding.scope)})`,
  };
}

export async function unbind(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const view = await loadBrokerView(ctx.config);
  const consumer = optString(opts, 'consumer');
  const capabilityId = optString(opts, 'capability') ?? '';
  const removed = await unbindCapability(view.paths, {
    capabilityId,
    scope: scopeFrom(opts),
    ...(consumer ? { consumer } : {}),
  });
  if (removed === 0) throw new AivaultError('not_found', `no binding for ${capabilityId} in that scope`);
  return {
    json: { capabilityId, removed },
    human: (p) => `${p.green('Unbound')} ${p.bold(capabilityId)} (${removed})`,
  };
}

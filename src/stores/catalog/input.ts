/**
 * Checks of what an operator asks the catalog to store (pure; the CLI, the operator API, the dashboard):
 * ids, hosts (the same rule invoke applies), methods, path prefixes, and a credential create request
 * validated against the registry and the vault's secrets. Throws AivaultError (usage/policy/…).
 */
import { AivaultError } from '../../core/errors.js';
import { isWildcardPattern, matchHost, parseHostPattern } from '../../core/broker/hosts.js';
import { publicSuffixWildcard } from '../../core/broker/public-suffix.js';
import { normalizePath } from '../../core/broker/path.js';
import { secretIdFromRef } from '../../core/broker/resolve-credential.js';
import type { SecretInfo } from '../../core/broker/types.js';
import {
  HTTP_METHODS,
  type AuthSpec,
  type HttpMethod,
  type RegistryIndex,
} from '../../core/registry/types.js';
import { authSpecSchema, ID_PATTERN, type StoredCredential } from './schema.js';
import { validate } from '../../core/validate.js';
import { hostsWithinProvider, regionalProvider, registryPlaceholders } from './snapshot.js';

export function usage(message: string): AivaultError {
  return new AivaultError('usage', message);
}

export function checkId(value: string, what: string): void {
  if (typeof value !== 'string' || !ID_PATTERN.test(value))
    throw usage(`${what} must be an id (letters, digits, . _ - /)`);
}

/**
 * A host as the operator typed it → its canonical stored form, by the same rule (and the same port
 * allowance) invoke applies, so a host that could never be called is refused here, not at invoke time.
 */
export function normalizeHostInput(raw: string, options: MutationOptions): string {
  const parsed = parseHostPattern(raw, { allowPort: options.allowNonDefaultPorts === true });
  if (!parsed.ok) {
    throw usage(
      `host ${JSON.stringify(raw)}: ${parsed.error.message} (give a bare DNS name like api.example.com or *.example.com: no scheme, port, path, IP or userinfo)`,
    );
  }
  return parsed.value;
}

export interface CreateCredentialInput {
  readonly id: string;
  readonly provider: string;
  /** `vault:secret:<id>` or a bare id; for single-slot providers. */
  readonly secretRef?: string;
  /** Placeholder → secret ref, for multi-secret credentials. */
  readonly secretRefs?: Readonly<Record<string, string>>;
  readonly auth?: AuthSpec;
  readonly hosts?: readonly string[];
  readonly params?: Readonly<Record<string, string>>;
  /** Bind the credential to an execution context (a group needs its workspace). */
  readonly workspaceId?: string;
  readonly groupId?: string;
}

export interface MutationOptions {
  /** Vault secrets, used to check refs exist and that pinned secrets stay with their provider. */
  readonly secrets?: readonly SecretInfo[];
  readonly nowMs?: number;
  /**
   * Accept `host:port` with a port other than 443: only when the vault honours
   * AIVAULT_DEV_ALLOW_NON_DEFAULT_PORTS (a verified `init --dev` vault), the only case invoke dials one.
   */
  readonly allowNonDefaultPorts?: boolean;
}

/** `--workspace-id/--group-id` of credential create → the stored binding (trimmed; group needs workspace). */
function contextOf(input: CreateCredentialInput): { workspaceId?: string; groupId?: string } {
  const workspaceId = input.workspaceId?.trim() || undefined;
  const groupId = input.groupId?.trim() || undefined;
  if (groupId !== undefined && workspaceId === undefined)
    throw usage('--group-id needs --workspace-id (a group lives in a workspace)');
  return {
    ...(workspaceId !== undefined ? { workspaceId } : {}),
    ...(groupId !== undefined ? { groupId } : {}),
  };
}

/** Validate a create request against registry + secrets. Pure; throws AivaultError (usage/policy/…). */
export function prepareCredential(
  input: CreateCredentialInput,
  registry: RegistryIndex,
  options: MutationOptions = {},
): StoredCredential {
  checkId(input.id, 'credential id');
  checkId(input.provider, 'provider');
  const registryProvider = registry.getProvider(input.provider);
  let refs: Record<string, string>;
  if (input.secretRefs && input.secretRef)
    throw usage('give either a secret ref or a secret ref map, not both');
  if (input.secretRefs) {
    refs = {};
    for (const [k, v] of Object.entries(input.secretRefs)) refs[k] = secretIdFromRef(v);
  } else if (input.secretRef) {
    const slots = registryProvider && !input.auth ? [...registryPlaceholders(registryProvider)] : ['secret'];
    if (slots.length !== 1) throw usage(`${input.provider} needs one secret per slot: ${slots.join(', ')}`);
    refs = { [slots[0] as string]: secretIdFromRef(input.secretRef) };
  } else {
    throw usage('a credential needs --secret-ref');
  }
  if (Object.keys(refs).length === 0) throw usage('a credential needs at least one secret ref');
  if (options.secrets) {
    const byId = new Map(options.secrets.map((s) => [s.id, s]));
    for (const secretId of Object.values(refs)) {
      const secret = byId.get(secretId);
      if (!secret) throw new AivaultError('not_found', `secret ${secretId} does not exist`);
      if (secret.pinnedProvider !== undefined && secret.pinnedProvider !== input.provider) {
        throw new AivaultError(
          'policy_violation',
          `secret ${secretId} is pinned to ${secret.pinnedProvider} and cannot be used by provider ${input.provider}`,
        );
      }
    }
  }
  const hosts = input.hosts?.map((h) => normalizeHostInput(h, options));
  const base = {
    id: input.id,
    provider: input.provider,
    secretRefs: refs,
    createdAtMs: options.nowMs ?? Date.now(),
    ...(input.params ? { params: { ...input.params } } : {}),
    ...contextOf(input),
  };

  if (registryProvider && !input.auth) {
    const provider = regionalProvider(registryProvider, input.params);
    if (!provider) {
      throw usage(
        `--aws-region applies to AWS providers only and must be a region name like eu-west-1 (${registryProvider.provider})`,
      );
    }
    const placeholders = registryPlaceholders(provider);
    const keys = Object.keys(refs);
    if (keys.length !== placeholders.size || !keys.every((k) => placeholders.has(k))) {
      throw usage(`${provider.provider} needs secret refs for: ${[...placeholders].join(', ')}`);
    }
    if (hosts) {
      for (const h of hosts) {
        if (isWildcardPattern(h) || !provider.hosts.some((p) => matchHost(p, h))) {
          throw new AivaultError(
            'policy_violation',
            `host ${h} is not allowed for provider ${provider.provider}`,
          );
        }
      }
    } else if (provider.hosts.some(isWildcardPattern)) {
      throw usage(`${provider.provider} uses per-tenant hosts (${provider.hosts.join(', ')}): pass --host`);
    }
    return { ...base, source: 'registry', ...(hosts ? { hosts } : {}) };
  }

  if (!input.auth || !hosts || hosts.length === 0) {
    throw usage('a custom provider needs explicit --auth and --host');
  }
  const auth = validate(authSpecSchema, input.auth);
  if (!auth.ok) throw usage('auth is not a valid auth spec');
  for (const h of hosts) {
    const suffix = publicSuffixWildcard(h);
    if (suffix !== undefined) {
      // The same class of refusal as `*.com` ("wildcard is too wide"), so the same code: usage.
      throw usage(
        `host ${h}: wildcard is too wide: ${suffix} is a public suffix (Public Suffix List), anyone can register or deploy a name under it; list your own hosts (my-app.${suffix}) instead`,
      );
    }
  }
  const provider = registryProvider;
  if (provider && !hostsWithinProvider(hosts, provider)) {
    throw new AivaultError(
      'policy_violation',
      `provider ${provider.provider} is a registry provider; its hosts are ${provider.hosts.join(', ')}`,
    );
  }
  return { ...base, source: 'custom', auth: auth.value, hosts };
}

/** Methods as stored: upper case, known, de-duplicated, at least one. */
export function checkMethods(methods: readonly string[]): HttpMethod[] {
  if (methods.length === 0) throw usage('a capability needs at least one --method');
  const upper = [...new Set(methods.map((m) => m.toUpperCase()))];
  for (const m of upper) {
    if (!(HTTP_METHODS as readonly string[]).includes(m)) throw usage(`method ${m} is not supported`);
  }
  return upper as HttpMethod[];
}

/** Path prefixes as stored: normalized, no query, at least one. */
export function checkPrefixes(prefixes: readonly string[]): string[] {
  if (prefixes.length === 0) throw usage('a capability needs at least one --path prefix ("/" allows all)');
  return prefixes.map((p) => {
    const r = normalizePath(p);
    if (!r.ok || r.value.query !== '') throw usage(`path prefix ${JSON.stringify(p)} is not a valid path`);
    return r.value.path;
  });
}

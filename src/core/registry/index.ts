/**
 * The built-in provider registry: compiled from registry/*.json at build time (scripts/gen-registry.mjs →
 * data.generated.ts), deep-frozen at load, never read from disk at run time. Cheap to import: one JSON.parse
 * plus one pass to build the lookup maps; everything derived for the CLI is computed lazily.
 *
 * Secret shape rule (the contract between the registry and the auth strategies):
 * - Template placeholders (`{{name}}`) are filled from the credential's secrets. `vaultSecrets` maps each
 *   claimed secret name to the placeholder its value fills (`OPENAI_API_KEY → secret`, `TRELLO_TOKEN → token`).
 *   A provider whose auth needs several values claims one secret per value (Trello, Twilio, Jira, Zendesk,
 *   Datadog, Plaid); the credential auto-provisions once all of them exist.
 * - A secret whose value is a JSON object also exposes its top-level string fields as placeholders. Registry
 *   providers list such secrets in `jsonSecrets` with their required/optional fields: oauth2 secrets are
 *   `{"clientId","clientSecret"?,"refreshToken"}` (the broker caches `accessToken`/`expiresAtMs` back into the
 *   same secret), aws_sigv4 secrets are `{"accessKeyId","secretAccessKey","sessionToken"?}`.
 * - Placeholders a strategy supplies itself: `{{access_token}}` (oauth2 `inject`, default
 *   `authorization: Bearer {{access_token}}`), `{{signature}}` and `{{timestamp}}` (hmac).
 * - Basic auth in the registry always gives both `username_template` and `password_template`; literals are
 *   allowed (`api` for Mailgun, `{{email}}/token` for Zendesk).
 * - `pathPrefixes` match the normalized path on a segment boundary (src/core/broker/path.ts `isUnderPrefix`):
 *   `/v1/chat` allows `/v1/chat` and `/v1/chat/…`, not `/v1/chatx`; a prefix ending in `/` is a plain prefix.
 *   So RPC-style APIs list each method (`/api/chat.postMessage`, `/v1/places:searchText`).
 */
import { unwrap } from '../errors.js';
import { compileRegistry } from './compile.js';
import { REGISTRY_DATA } from './data.generated.js';
import type {
  AuthSpec,
  AuthType,
  CapabilityDocs,
  HttpMethod,
  JsonSecretShape,
  RegistryCapability,
  RegistryIndex,
  RegistryProvider,
} from './types.js';
import { authTypeOf } from './auth-type.js';
import { isWildcardPattern } from '../broker/hosts.js';

export type * from './types.js';
export { AUTH_TYPES, HTTP_METHODS } from './types.js';

function freezeIndex(index: RegistryIndex): RegistryIndex {
  // compileRegistry freezes the data and the index object; freeze its lookup functions too so nothing hangs
  // mutable state off the registry.
  for (const value of Object.values(index)) if (typeof value === 'function') Object.freeze(value);
  return index;
}

/** The compiled, deep-frozen built-in registry. */
export const registry: RegistryIndex = freezeIndex(compileRegistry(REGISTRY_DATA));

const EMPTY: readonly never[] = Object.freeze([]);

/** All built-in providers, sorted by provider id. */
export function listProviders(): readonly RegistryProvider[] {
  return registry.providers;
}

/** Capabilities of one provider (empty for an unknown provider). */
export function capabilitiesOf(provider: string): readonly RegistryCapability[] {
  return registry.getProvider(provider)?.capabilities ?? EMPTY;
}

const PLACEHOLDER = /\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}/g;

/** Placeholder names referenced by one template (`"Bearer {{secret}}"` → `["secret"]`). */
export function templatePlaceholders(template: string): string[] {
  return [...template.matchAll(PLACEHOLDER)].map((m) => m[1] as string);
}

/** Placeholders a strategy fills itself (not from secrets). */
export const RUNTIME_PLACEHOLDERS: Readonly<Partial<Record<AuthType, readonly string[]>>> = Object.freeze({
  oauth2: Object.freeze(['access_token']),
  hmac: Object.freeze(['signature', 'timestamp']),
});

/** Every template an auth spec renders, with defaults applied (query → `{{secret}}`, oauth2 inject). */
export function authTemplates(auth: AuthSpec): string[] {
  if ('header' in auth) return [auth.header.value_template];
  if ('query' in auth) return [auth.query.value_template ?? '{{secret}}'];
  if ('path' in auth) return [auth.path.prefix_template];
  if ('basic' in auth) {
    return [auth.basic.username_template, auth.basic.password_template].filter(
      (t): t is string => t !== undefined,
    );
  }
  if ('multi_header' in auth) return auth.multi_header.map((h) => h.value_template);
  if ('multi_query' in auth) return auth.multi_query.map((q) => q.value_template ?? '{{secret}}');
  if ('oauth2' in auth) return [auth.oauth2.inject?.value_template ?? 'Bearer {{access_token}}'];
  if ('hmac' in auth) return [auth.hmac.value_template];
  return [];
}

/** Placeholders the provider's secrets must supply (runtime placeholders excluded), sorted and unique. */
export function requiredPlaceholders(provider: RegistryProvider): string[] {
  const runtime = RUNTIME_PLACEHOLDERS[unwrap(authTypeOf(provider.auth))] ?? EMPTY;
  const names = authTemplates(provider.auth).flatMap(templatePlaceholders);
  return [...new Set(names)].filter((n) => !runtime.includes(n)).sort();
}

export interface ProviderCategory {
  readonly category: string;
  /** Provider ids, sorted. */
  readonly providers: readonly string[];
}

let categoriesCache: readonly ProviderCategory[] | undefined;

/** Providers grouped by category (sorted by category; uncategorized providers under "Other"). */
export function providerCategories(): readonly ProviderCategory[] {
  if (!categoriesCache) {
    const groups = new Map<string, string[]>();
    for (const p of registry.providers) {
      const key = p.category ?? 'Other';
      const list = groups.get(key) ?? [];
      list.push(p.provider);
      groups.set(key, list);
    }
    categoriesCache = Object.freeze(
      [...groups.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([category, providers]) =>
          Object.freeze({ category, providers: Object.freeze(providers.sort()) }),
        ),
    );
  }
  return categoriesCache;
}

export interface SecretRequirement {
  /** Claimed secret name (`secrets create --name`). */
  readonly name: string;
  /** Placeholder the value fills. */
  readonly placeholder: string;
  /** `json` when the value must be a JSON object (see `fields`). */
  readonly format: 'string' | 'json';
  readonly fields?: { readonly required: readonly string[]; readonly optional: readonly string[] };
  readonly description?: string;
}

/** Plain, JSON-serializable description for `aivault capability describe <id>`. */
export interface CapabilityDescription {
  readonly id: string;
  readonly provider: string;
  readonly displayName?: string;
  readonly category?: string;
  readonly summary?: string;
  readonly providerSummary?: string;
  readonly docsUrl?: string;
  readonly auth: { readonly type: AuthType; readonly detail: string };
  readonly secrets: readonly SecretRequirement[];
  readonly host: string;
  /** True when the host is a per-tenant pattern: bind a concrete host with `credential create --host`. */
  readonly perTenantHost: boolean;
  readonly methods: readonly HttpMethod[];
  readonly pathPrefixes: readonly string[];
  readonly contentType?: CapabilityDocs['contentType'];
  readonly example?: Readonly<Record<string, unknown>>;
  /** Shell commands that provision the credential. */
  readonly setup: readonly string[];
  /** Example `aivault invoke` command lines. */
  readonly invoke: readonly string[];
}

/** Human-readable auth detail without any secret value. */
export function describeAuth(auth: AuthSpec): string {
  if ('header' in auth) return `header ${auth.header.header_name}: ${auth.header.value_template}`;
  if ('query' in auth) return `query ?${auth.query.param_name}=${auth.query.value_template ?? '{{secret}}'}`;
  if ('path' in auth) return `path prefix ${auth.path.prefix_template}`;
  if ('basic' in auth) {
    const b = auth.basic;
    return `basic ${b.username_template ?? '{{username}}'}:${b.password_template ?? '{{password}}'}`;
  }
  if ('multi_header' in auth)
    return `headers ${auth.multi_header.map((h) => `${h.header_name}: ${h.value_template}`).join(', ')}`;
  if ('multi_query' in auth) {
    return `query ${auth.multi_query.map((q) => `${q.param_name}=${q.value_template ?? '{{secret}}'}`).join('&')}`;
  }
  if ('oauth2' in auth) {
    const o = auth.oauth2;
    const scopes = o.scopes?.length ? ` scopes ${o.scopes.join(' ')}` : '';
    return `oauth2 ${o.grant_type} via ${o.token_endpoint}${scopes}`;
  }
  if ('aws_sigv4' in auth)
    return `aws sigv4 service ${auth.aws_sigv4.service} region ${auth.aws_sigv4.region}`;
  if ('hmac' in auth)
    return `hmac-${auth.hmac.algorithm} in ${auth.hmac.header_name}: ${auth.hmac.value_template}`;
  return 'mutual TLS client certificate';
}

/** Quote one shell word only when needed (POSIX single quotes). */
export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

function secretRequirements(provider: RegistryProvider): SecretRequirement[] {
  return Object.entries(provider.vaultSecrets)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, placeholder]) => {
      const shape: JsonSecretShape | undefined = provider.jsonSecrets?.[name];
      if (!shape) return { name, placeholder, format: 'string' as const };
      return {
        name,
        placeholder,
        format: 'json' as const,
        fields: { required: shape.required, optional: shape.optional ?? EMPTY },
        ...(shape.description === undefined ? {} : { description: shape.description }),
      };
    });
}

function exampleValue(req: SecretRequirement): string {
  if (req.format === 'string' || !req.fields) return '<value>';
  const obj = Object.fromEntries(req.fields.required.map((f) => [f, '<value>']));
  return JSON.stringify(obj);
}

interface Example {
  method?: unknown;
  path?: unknown;
  headers?: unknown;
  body?: unknown;
  multipart?: { fields?: unknown; files?: unknown };
  stream?: unknown;
}

function stringRecord(value: unknown): [string, string][] {
  if (value === null || typeof value !== 'object') return [];
  return Object.entries(value).filter((e): e is [string, string] => typeof e[1] === 'string');
}

function invokeLines(capability: RegistryCapability): string[] {
  const { methods, pathPrefixes } = capability.allow;
  const docs = capability.docs;
  const ex = (docs?.example ?? {}) as Example;
  const method = typeof ex.method === 'string' ? ex.method : (methods[0] ?? 'GET');
  const path = typeof ex.path === 'string' ? ex.path : (pathPrefixes[0] ?? '/');
  const args = ['--method', method, '--path', path];
  for (const [k, v] of stringRecord(ex.headers)) args.push('--header', `${k}=${v}`);
  if (ex.multipart) {
    for (const [k, v] of stringRecord(ex.multipart.fields)) args.push('--multipart-field', `${k}=${v}`);
    for (const [k, v] of stringRecord(ex.multipart.files)) args.push('--multipart-file', `${k}=${v}`);
  } else if (ex.body !== undefined) {
    const isText = typeof ex.body === 'string';
    const hasType = stringRecord(ex.headers).some(([k]) => k.toLowerCase() === 'content-type');
    if (!isText && !hasType) args.push('--header', 'content-type=application/json');
    args.push('--body', isText ? (ex.body as string) : JSON.stringify(ex.body));
  } else if (!docs?.example && method !== 'GET' && method !== 'HEAD' && docs?.contentType === 'json') {
    args.push('--header', 'content-type=application/json', '--body', '{}');
  }
  const quoted = args.map(shellQuote).join(' ');
  const lines = [`aivault invoke ${capability.id} ${quoted}`];
  if (ex.stream === true) lines.push(`aivault invoke ${capability.id} --stream ${quoted}`);
  else lines.push(`aivault json ${capability.id} ${quoted}`);
  return lines;
}

/** Everything `aivault capability describe <id>` shows, or undefined for an unknown capability. */
export function describeCapability(id: string): CapabilityDescription | undefined {
  const capability = registry.getCapability(id);
  if (!capability) return undefined;
  const provider = registry.getProvider(capability.provider);
  if (!provider) return undefined;
  const host = capability.allow.hosts[0] ?? '';
  const perTenantHost = isWildcardPattern(host);
  const secrets = secretRequirements(provider);
  const setup = secrets.map(
    (s) => `aivault secrets create --name ${s.name} --value ${shellQuote(exampleValue(s))} --scope global`,
  );
  if (perTenantHost) {
    setup.push(
      `aivault credential create ${provider.provider} --provider ${provider.provider} --secret-ref vault:secret:<id> --host ${host.replace('*', '<tenant>')}`,
    );
  }
  const docs = capability.docs;
  const description: CapabilityDescription = {
    id: capability.id,
    provider: provider.provider,
    ...(provider.displayName === undefined ? {} : { displayName: provider.displayName }),
    ...(provider.category === undefined ? {} : { category: provider.category }),
    ...(docs?.summary === undefined ? {} : { summary: docs.summary }),
    ...(provider.summary === undefined ? {} : { providerSummary: provider.summary }),
    ...((docs?.docsUrl ?? provider.docsUrl) === undefined
      ? {}
      : { docsUrl: docs?.docsUrl ?? provider.docsUrl }),
    auth: { type: unwrap(authTypeOf(provider.auth)), detail: describeAuth(provider.auth) },
    secrets,
    host,
    perTenantHost,
    methods: capability.allow.methods,
    pathPrefixes: capability.allow.pathPrefixes,
    ...(docs?.contentType === undefined ? {} : { contentType: docs.contentType }),
    ...(docs?.example === undefined ? {} : { example: docs.example }),
    setup,
    invoke: invokeLines(capability),
  };
  return description;
}

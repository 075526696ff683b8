/**
 * checkRequest: the whole broker decision for one call, as a pure function of (envelope, context,
 * snapshot, registry). No I/O, no secret values, never throws for a policy outcome: every refusal is
 * a Result with a stable code. The shell (pipeline/) executes the Plan it returns.
 */
import { fail, ok, type Result } from '../errors.js';
import type { AuthSpec, RegistryIndex, RegistryProvider, SecretClaim } from '../registry/types.js';
import { parseEnvelope } from './envelope.js';
import { injectedHeaderNames, sanitizeRequestHeaders } from './headers.js';
import { DEFAULT_HTTPS_PORT, isWildcardPattern, matchHost, parseAuthority } from './hosts.js';
import { regionalHosts, regionOverride } from './aws-region.js';
import { isUnderPrefix, normalizePath } from './path.js';
import { resolveCapability } from './resolve-capability.js';
import { resolveCredential, servesCapability } from './resolve-credential.js';
import type {
  BrokerSnapshot,
  Capability,
  Credential,
  EffectivePolicy,
  Envelope,
  Plan,
  PlanBody,
  RequestContext,
} from './types.js';

export interface DevOptions {
  /** Only honoured for vaults created with `init --dev` (the caller decides; policy just obeys). */
  readonly allowNonDefaultPorts: boolean;
}

export interface CheckRequestInput {
  readonly envelope: unknown;
  readonly context: RequestContext;
  readonly snapshot: BrokerSnapshot;
  readonly registry: RegistryIndex;
  readonly dev?: DevOptions;
}

const NO_BODY: PlanBody = Object.freeze({ kind: 'none' });
const EMPTY_PARAMS: Readonly<Record<string, string>> = Object.freeze({});
const EMPTY_LIST: readonly string[] = Object.freeze([]);

/**
 * Effective host = capability host ∩ credential hosts. A concrete credential host must match the
 * capability host (or its wildcard); a wildcard credential host admits a concrete capability host.
 * Exactly one concrete result, else policy_violation (empty, or still a pattern, or ambiguous).
 */
export function effectiveHost(capability: Capability, credential: Credential): Result<string> {
  const found = new Set<string>();
  for (const capHost of regionalHosts(capability.allow.hosts, regionOverride(credential))) {
    for (const credHost of credential.hosts) {
      if (!isWildcardPattern(credHost)) {
        if (matchHost(capHost, credHost)) found.add(credHost);
      } else if (!isWildcardPattern(capHost) && matchHost(credHost, capHost)) {
        found.add(capHost);
      }
    }
  }
  if (found.size === 1) return ok([...found][0] as string);
  if (found.size === 0) {
    return fail(
      'policy_violation',
      'the credential has no host allowed by this capability (bind a concrete host)',
      {
        capability: capability.id,
        credential: credential.id,
      },
    );
  }
  return fail('policy_violation', 'the credential matches more than one host for this capability', {
    capability: capability.id,
    credential: credential.id,
  });
}

/**
 * Pinning (SPEC §5): a registry-pinned secret is only ever injected into requests to its provider's
 * registry hosts, via a capability of that provider. Checked against the compiled registry on every
 * request, so it holds even if broker.json (or the snapshot built from it) was tampered with.
 * Returns the registry template (the provider, or the credential alternative the credential names) when
 * the credential carries pinned secrets: its auth is then taken from the registry too (a tampered oauth2
 * token_endpoint must not receive a pinned refresh token). A secret claimed by an alternative (e.g.
 * CODEX_OAUTH_JSON) is only ever used through that alternative, on its hosts.
 */
export function checkPinning(
  capability: Capability,
  credential: Credential,
  host: string,
  snapshot: BrokerSnapshot,
  registry: RegistryIndex,
): Result<{ readonly auth: AuthSpec } | undefined> {
  let provider: RegistryProvider | undefined;
  let template: { readonly auth: AuthSpec; readonly hosts: readonly string[] } | undefined;
  for (const key in credential.secretRefs) {
    if (!Object.hasOwn(credential.secretRefs, key)) continue;
    const secret = snapshot.secrets.get(credential.secretRefs[key] as string);
    if (!secret) return fail('credential_not_found', 'the credential references a missing secret');
    // The vault binds pinnedProvider into the ciphertext AAD; the registry claim on the name is a second,
    // independent source, so a record whose pin was stripped is still treated as pinned.
    const pinnedTo = secret.pinnedProvider ?? registry.claimFor(secret.name)?.provider;
    if (pinnedTo === undefined) continue;
    const registryProvider = registry.getProvider(pinnedTo);
    if (!registryProvider || (provider && provider !== registryProvider)) {
      return fail('policy_violation', 'the credential mixes secrets pinned to different providers');
    }
    provider = registryProvider;
    if (capability.provider !== pinnedTo || credential.provider !== pinnedTo) {
      return fail('policy_violation', `a secret pinned to ${pinnedTo} cannot be used by this capability`, {
        capability: capability.id,
      });
    }
    const chosen = pinnedTemplate(registryProvider, credential, registry.claimFor(secret.name));
    if (!chosen.ok) return chosen;
    if (template && template !== chosen.value) {
      return fail('policy_violation', 'the credential mixes secrets of different registry credentials');
    }
    template = chosen.value;
    if (!servesCapability(credential, capability.id)) {
      return fail('policy_violation', 'this credential does not serve this capability', {
        capability: capability.id,
      });
    }
    let hostOk = false;
    // A regional AWS credential reaches the same service's hosts in its region (aws-region.ts).
    for (const pattern of regionalHosts(template.hosts, regionOverride(credential))) {
      if (matchHost(pattern, host)) {
        hostOk = true;
        break;
      }
    }
    if (!hostOk) {
      return fail('policy_violation', `a secret pinned to ${pinnedTo} can only reach ${pinnedTo} hosts`, {
        capability: capability.id,
      });
    }
  }
  return ok(template);
}

/**
 * The registry template a pinned secret may be used through: the credential alternative the credential
 * names, else the provider itself; and the secret's registry claim (if its name is claimed) must be by
 * that same template, so a tampered record cannot move a secret between templates.
 */
function pinnedTemplate(
  provider: RegistryProvider,
  credential: Credential,
  claim: SecretClaim | undefined,
): Result<{ readonly auth: AuthSpec; readonly hosts: readonly string[] }> {
  const claimedByAlternative =
    claim !== undefined && claim.provider === provider.provider && claim.alternatives;
  if (credential.alternative === undefined) {
    if (claimedByAlternative) {
      return fail(
        'policy_violation',
        `secret ${claim.secretName} is only usable through its registry credential`,
      );
    }
    return ok(provider);
  }
  const alt = provider.credentialAlternatives?.find((a) => a.id === credential.alternative);
  const claimedByMain = claim !== undefined && claim.provider === provider.provider && !claim.alternatives;
  if (!alt || claimedByMain || (claimedByAlternative && !claimedByAlternative.includes(alt.id))) {
    return fail('policy_violation', 'the credential does not match its registry credential alternative');
  }
  return ok(alt);
}

const injectedQueryCache = new WeakMap<object, ReadonlySet<string>>();

function injectedQueryNames(auth: AuthSpec): ReadonlySet<string> {
  let names = injectedQueryCache.get(auth);
  if (!names) {
    const set = new Set<string>();
    if ('query' in auth) set.add(auth.query.param_name);
    else if ('multi_query' in auth) for (const q of auth.multi_query) set.add(q.param_name);
    names = set;
    injectedQueryCache.set(auth, names);
  }
  return names;
}

/**
 * For query-param auth the parameter is broker-owned, like an auth header: a caller-supplied
 * `?key=…` would let the caller substitute or shadow the injected credential, so it is refused.
 */
function checkQueryNames(query: string, auth: AuthSpec): Result<true> {
  const names = injectedQueryNames(auth);
  if (names.size === 0 || query === '') return ok(true);
  for (const pair of query.split('&')) {
    const eq = pair.indexOf('=');
    let name = eq === -1 ? pair : pair.slice(0, eq);
    try {
      name = decodeURIComponent(name.replace(/\+/g, ' '));
    } catch {
      return fail('invalid_request', 'request.path query has a malformed parameter name');
    }
    if (names.has(name)) {
      return fail('policy_violation', `query parameter ${name} is broker-owned (auth)`, { parameter: name });
    }
  }
  return ok(true);
}

function effectivePolicy(snapshot: BrokerSnapshot, capabilityId: string): EffectivePolicy {
  const stored = snapshot.policies.get(capabilityId);
  const responseBlocklist = stored?.responseBlocklist ?? EMPTY_LIST;
  const policy: { -readonly [K in keyof EffectivePolicy]: EffectivePolicy[K] } = {
    responseBlocklist,
    // The blocklist streams (src/request-worker/pipeline/blocklist-stream.ts); only a size limit needs the whole body.
    bufferResponse: stored?.maxResponseBodyBytes !== undefined,
  };
  if (stored?.rateLimitPerMinute !== undefined) policy.rateLimitPerMinute = stored.rateLimitPerMinute;
  if (stored?.maxRequestBodyBytes !== undefined) policy.maxRequestBodyBytes = stored.maxRequestBodyBytes;
  if (stored?.maxResponseBodyBytes !== undefined) policy.maxResponseBodyBytes = stored.maxResponseBodyBytes;
  if (stored?.approval !== undefined) policy.approval = stored.approval;
  return policy;
}

/** Decoded size of a validated base64 string, without decoding it. */
function base64Size(b64: string): number {
  const pad = b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0;
  return (b64.length / 4) * 3 - pad;
}

/**
 * Bodies read from a local path are read by the daemon with ITS privileges. Only the daemon's owner on its
 * private socket (or the in-process CLI, which reads as the caller anyway) may name paths; a --shared socket
 * peer or an HTTP caller could otherwise make the daemon send the owner's files (kek.key, ssh keys) upstream.
 */
function checkLocalFiles(envelope: Envelope, context: RequestContext): Result<true> {
  const { request } = envelope;
  const namesPath =
    request.bodyFilePath !== undefined || (request.multipartFiles ?? []).some((f) => f.path !== undefined);
  if (namesPath && context.localFiles !== true) {
    return fail(
      'policy_violation',
      'local file paths (bodyFilePath, multipartFiles[].path) are accepted only from the owner’s private socket; send the content inline',
    );
  }
  return ok(true);
}

function buildBody(envelope: Envelope, policy: EffectivePolicy): Result<PlanBody> {
  const request = envelope.request;
  const max = policy.maxRequestBodyBytes;
  let body: PlanBody = NO_BODY;
  let knownSize = 0;
  if (request.body !== undefined) {
    // Buffer.from beats TextEncoder.encode severalfold for request-sized strings (pooled allocation).
    const data: Uint8Array = Buffer.from(request.body, 'utf8');
    knownSize = data.byteLength;
    body = { kind: 'bytes', data };
  } else if (request.bodyBase64 !== undefined) {
    knownSize = base64Size(request.bodyBase64);
    if (max === undefined || knownSize <= max) {
      const buf = Buffer.from(request.bodyBase64, 'base64');
      body = { kind: 'bytes', data: new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) };
    }
  } else if (request.bodyBytes !== undefined) {
    knownSize = request.bodyBytes.byteLength;
    if (max === undefined || knownSize <= max) body = { kind: 'bytes', data: request.bodyBytes };
  } else if (request.multipart !== undefined || request.multipartFiles !== undefined) {
    const fields = request.multipart ?? [];
    const files = request.multipartFiles ?? [];
    // Lower bound of the encoded size: the parts that are inline. Files on disk are measured by the
    // pipeline when it streams them.
    for (const f of fields) knownSize += Buffer.byteLength(f.value, 'utf8');
    for (const f of files) if (f.contentBase64 !== undefined) knownSize += base64Size(f.contentBase64);
    body = { kind: 'multipart', fields, files };
  } else if (request.bodyFilePath !== undefined) {
    body = { kind: 'file', path: request.bodyFilePath };
  }
  if (max !== undefined && knownSize > max) {
    return fail('body_too_large', 'request body exceeds the capability limit', { limit: max });
  }
  return ok(body);
}

/** Slot → secret NAME (for `[redacted:<NAME>]` in scrubbed responses); the id when the name is unknown. */
function secretNamesOf(credential: Credential, snapshot: BrokerSnapshot): Record<string, string> {
  const names: Record<string, string> = {};
  for (const [slot, id] of Object.entries(credential.secretRefs)) {
    names[slot] = snapshot.secrets.get(id)?.name ?? id;
  }
  return names;
}

/** `/backend-api/codex` + `/responses`; the prefix alone for `/`. */
function withPathPrefix(prefix: string | undefined, path: string): string {
  if (prefix === undefined || prefix === '') return path;
  const base = prefix.replace(/\/+$/, '');
  return path === '/' ? base : `${base}/${path.replace(/^\/+/, '')}`;
}

/**
 * Decide one request. Steps: parse → capability → credential → method → path → host → port →
 * pinning → headers → body → Plan.
 *
 * @example
 * const r = checkRequest({ envelope, context: {}, snapshot, registry });
 * if (!r.ok) return errorFrame(r.error); // r.error.code: 'policy_violation' | …
 */
export function checkRequest(input: CheckRequestInput): Result<Plan> {
  const parsed = parseEnvelope(input.envelope);
  if (!parsed.ok) return parsed;
  const envelope = parsed.value;
  const { context, snapshot, registry } = input;

  const capResult = resolveCapability(envelope.capability, snapshot, registry, context);
  if (!capResult.ok) return capResult;
  const capability = capResult.value;

  const credResult = resolveCredential({
    capability,
    explicitCredential: envelope.credential,
    context,
    snapshot,
  });
  if (!credResult.ok) return credResult;
  const credential = credResult.value;

  const method = envelope.request.method as Plan['method'];
  if (!capability.allow.methods.includes(method)) {
    return fail('policy_violation', `method ${method} is not allowed by this capability`, {
      capability: capability.id,
    });
  }

  const pathResult = normalizePath(envelope.request.path);
  if (!pathResult.ok) return pathResult;
  const { path, query } = pathResult.value;
  let underPrefix = false;
  for (const prefix of capability.allow.pathPrefixes) {
    if (isUnderPrefix(path, prefix)) {
      underPrefix = true;
      break;
    }
  }
  if (!underPrefix) {
    return fail('policy_violation', 'path is outside the capability path prefixes', {
      capability: capability.id,
    });
  }

  const hostResult = effectiveHost(capability, credential);
  if (!hostResult.ok) return hostResult;
  // Stored hosts are canonical; re-parse anyway so a tampered value (scheme, userinfo, IP, port)
  // cannot reach the transport. https is implied: a Plan has no scheme field to set.
  const authority = parseAuthority(hostResult.value, { allowPort: input.dev?.allowNonDefaultPorts === true });
  if (!authority.ok) return authority;

  const pin = checkPinning(capability, credential, hostResult.value, snapshot, registry);
  if (!pin.ok) return pin;
  const auth: AuthSpec = pin.value ? pin.value.auth : credential.auth;
  // A credential alternative's upstream path prefix (registry data, applied after every path check).
  const upstreamPath = withPathPrefix(credential.upstreamPathPrefix, path);

  const isMultipart =
    envelope.request.multipart !== undefined || envelope.request.multipartFiles !== undefined;
  const headers = sanitizeRequestHeaders(envelope.request.headers ?? [], {
    injected: injectedHeaderNames(auth),
    multipart: isMultipart,
  });
  if (!headers.ok) return headers;

  const queryClash = checkQueryNames(query, auth);
  if (!queryClash.ok) return queryClash;

  const localFiles = checkLocalFiles(envelope, context);
  if (!localFiles.ok) return localFiles;
  const policy = effectivePolicy(snapshot, capability.id);
  const body = buildBody(envelope, policy);
  if (!body.ok) return body;

  return ok({
    capabilityId: capability.id,
    credentialId: credential.id,
    provider: capability.provider,
    method,
    host: authority.value.host,
    port: authority.value.port ?? DEFAULT_HTTPS_PORT,
    path: upstreamPath,
    query,
    headers: headers.value,
    body: body.value,
    auth,
    secretRefs: credential.secretRefs,
    secretNames: secretNamesOf(credential, snapshot),
    credentialParams: credential.params ?? EMPTY_PARAMS,
    policy,
  });
}

/**
 * Passthrough capability matching (`/v/{credential}/…`), pure: which capability labels a request that an
 * unchanged SDK sent to the loopback listener. Runs in the request worker (src/request-worker/pipeline/call-request.ts).
 *
 * Matching only picks the capability id that labels the call (most specific path prefix wins); the broker
 * then runs its full policy (checkRequest) on the resulting envelope, so matching can never widen what
 * policy allows.
 */
import { fail, ok, type Result } from '../errors.js';
import type { BrokerSnapshot, Capability, Credential } from './types.js';
import type { RegistryIndex } from '../registry/types.js';
import { effectiveHost } from './policy.js';
import { isUnderPrefix, normalizePath } from './path.js';
import { capabilityFromRegistry, tokenAllowsCapability } from './resolve-capability.js';

export interface PassthroughMatch {
  /** The most specific matching capability (longest matching path prefix). */
  readonly capability: string;
  /** Every matching capability id (for the audit trail / debugging). */
  readonly matches: readonly string[];
}

/**
 * Match METHOD + path against the capabilities of the credential's provider (registry + custom ones on
 * this credential) that the token grants and whose host intersects the credential's hosts.
 */
export function matchPassthrough(input: {
  readonly snapshot: BrokerSnapshot;
  readonly registry: RegistryIndex;
  readonly credentialId: string;
  readonly method: string;
  readonly path: string;
  readonly tokenCapabilities?: readonly string[];
}): Result<PassthroughMatch> {
  const { snapshot, registry } = input;
  const credential: Credential | undefined = snapshot.credentials.get(input.credentialId);
  if (!credential) {
    return fail('credential_not_found', `no credential ${input.credentialId}`, {
      credential: input.credentialId,
    });
  }
  const route = routeOf(candidatesOf(snapshot, registry, credential), input.method, input.path);
  if (!route.ok) return route;
  const { path, ranked } = route.value;
  const tokenCaps = input.tokenCapabilities;
  const granted = tokenCaps ? ranked.filter((cap) => tokenAllowsCapability(tokenCaps, cap)) : ranked;
  if (granted.length === 0) {
    return ranked.length > 0
      ? fail('policy_violation', `the proxy token grants no capability that allows ${input.method} ${path}`, {
          credential: credential.id,
        })
      : fail('policy_violation', `no ${credential.provider} capability allows ${input.method} ${path}`, {
          credential: credential.id,
        });
  }
  return ok({ capability: (granted[0] as Capability).id, matches: granted.map((c) => c.id) });
}

/** A METHOD + raw path's normalized path and its matching capabilities, most specific prefix first. */
interface Route {
  readonly path: string;
  readonly ranked: readonly Capability[];
}

/**
 * What one credential's `/v/` calls can match, for one snapshot: the candidate capabilities (its
 * provider's registry ones and the custom ones bound to it) whose host intersects the credential's, and
 * the routes already matched. Everything here is a pure function of the snapshot, the registry and the
 * credential, all immutable (a catalog change makes a new snapshot, so nothing is ever stale). Rebuilding
 * it per call — 25 OpenAI capabilities, a host check each, the path normalized twice — was ~10 µs of
 * every `/v/` call in the request worker (bench/PROFILE.md).
 */
interface CredentialCandidates {
  readonly candidates: readonly Capability[];
  /** `METHOD path` (raw) → route; bounded (ROUTE_CACHE_MAX), cleared when full. */
  readonly routes: Map<string, Result<Route>>;
}

/** Routes remembered per credential and snapshot (a bounded cache: caller paths may carry ids). */
const ROUTE_CACHE_MAX = 512;
/** Longer raw paths are matched, not remembered. */
const ROUTE_CACHE_PATH_MAX = 256;

const candidatesCache = new WeakMap<
  RegistryIndex,
  WeakMap<BrokerSnapshot, Map<string, CredentialCandidates>>
>();

function candidatesOf(
  snapshot: BrokerSnapshot,
  registry: RegistryIndex,
  credential: Credential,
): CredentialCandidates {
  let bySnapshot = candidatesCache.get(registry);
  if (!bySnapshot) candidatesCache.set(registry, (bySnapshot = new WeakMap()));
  let byCredential = bySnapshot.get(snapshot);
  if (!byCredential) bySnapshot.set(snapshot, (byCredential = new Map()));
  let entry = byCredential.get(credential.id);
  if (!entry) {
    const candidates: Capability[] = [];
    const provider = registry.getProvider(credential.provider);
    if (provider) for (const c of provider.capabilities) candidates.push(capabilityFromRegistry(c));
    for (const c of customCapabilitiesOf(snapshot).get(credential.id) ?? []) {
      if (c.provider === credential.provider) candidates.push(c);
    }
    entry = {
      candidates: candidates.filter((cap) => effectiveHost(cap, credential).ok),
      routes: new Map(),
    };
    byCredential.set(credential.id, entry);
  }
  return entry;
}

function routeOf(entry: CredentialCandidates, method: string, rawPath: string): Result<Route> {
  const key = `${method} ${rawPath}`;
  const known = entry.routes.get(key);
  if (known) return known;
  const route = matchRoute(entry.candidates, method, rawPath);
  if (rawPath.length <= ROUTE_CACHE_PATH_MAX) {
    if (entry.routes.size >= ROUTE_CACHE_MAX) entry.routes.clear();
    entry.routes.set(key, route);
  }
  return route;
}

/** The candidates that allow METHOD and have a path prefix over the normalized path, most specific first. */
function matchRoute(candidates: readonly Capability[], method: string, rawPath: string): Result<Route> {
  const normalized = normalizePath(rawPath);
  if (!normalized.ok) return normalized;
  const path = normalized.value.path;
  const matches: { cap: Capability; prefix: number }[] = [];
  for (const cap of candidates) {
    if (!cap.allow.methods.includes(method as Capability['allow']['methods'][number])) continue;
    let best = -1;
    for (const prefix of cap.allow.pathPrefixes) {
      if (isUnderPrefix(path, prefix) && prefix.length > best) best = prefix.length;
    }
    if (best >= 0) matches.push({ cap, prefix: best });
  }
  matches.sort((a, b) => b.prefix - a.prefix || a.cap.id.localeCompare(b.cap.id));
  return ok({ path, ranked: matches.map((m) => m.cap) });
}

/**
 * Custom capabilities by the credential they are bound to, built once per snapshot (snapshots are
 * immutable; a catalog change makes a new one). Scanning every capability of the catalog on each `/v/`
 * call was the biggest item of ours in a request worker's profile (issue 12).
 */
const customByCredential = new WeakMap<BrokerSnapshot, ReadonlyMap<string, readonly Capability[]>>();

function customCapabilitiesOf(snapshot: BrokerSnapshot): ReadonlyMap<string, readonly Capability[]> {
  let byCredential = customByCredential.get(snapshot);
  if (!byCredential) {
    const m = new Map<string, Capability[]>();
    for (const c of snapshot.capabilities.values()) {
      if (c.source !== 'custom' || c.credentialId === undefined) continue;
      const list = m.get(c.credentialId);
      if (list) list.push(c);
      else m.set(c.credentialId, [c]);
    }
    byCredential = m;
    customByCredential.set(snapshot, byCredential);
  }
  return byCredential;
}

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
  const normalized = normalizePath(input.path);
  if (!normalized.ok) return normalized;
  const path = normalized.value.path;
  const candidates: Capability[] = [];
  const provider = registry.getProvider(credential.provider);
  if (provider) for (const c of provider.capabilities) candidates.push(capabilityFromRegistry(c));
  for (const c of customCapabilitiesOf(snapshot).get(credential.id) ?? []) {
    if (c.provider === credential.provider) candidates.push(c);
  }
  const matches: { id: string; prefix: number }[] = [];
  let outOfScope = 0;
  for (const cap of candidates) {
    if (!cap.allow.methods.includes(input.method as Capability['allow']['methods'][number])) continue;
    let best = -1;
    for (const prefix of cap.allow.pathPrefixes) {
      if (isUnderPrefix(path, prefix) && prefix.length > best) best = prefix.length;
    }
    if (best < 0) continue;
    if (!effectiveHost(cap, credential).ok) continue;
    if (input.tokenCapabilities && !tokenAllowsCapability(input.tokenCapabilities, cap)) {
      outOfScope++;
      continue;
    }
    matches.push({ id: cap.id, prefix: best });
  }
  if (matches.length === 0) {
    return outOfScope > 0
      ? fail('policy_violation', `the proxy token grants no capability that allows ${input.method} ${path}`, {
          credential: credential.id,
        })
      : fail('policy_violation', `no ${credential.provider} capability allows ${input.method} ${path}`, {
          credential: credential.id,
        });
  }
  matches.sort((a, b) => b.prefix - a.prefix || a.id.localeCompare(b.id));
  return ok({ capability: (matches[0] as { id: string }).id, matches: matches.map((m) => m.id) });
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

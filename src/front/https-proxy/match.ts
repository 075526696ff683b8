/**
 * Which credentials serve a CONNECT host for a proxy token, and which capability an inner request maps
 * to (daemon main thread, pure). Like the `/v/` passthrough this only LABELS the call; the request worker
 * re-checks the full broker policy on the resulting envelope, so matching here can never widen it.
 */
import { fail, ok, type Result } from '../../core/errors.js';
import type { BrokerSnapshot, Capability, Credential } from '../../core/broker/types.js';
import type { RegistryIndex } from '../../core/registry/types.js';
import type { ProxyTokenRecord } from '../../stores/tokens/tokens.js';
import { matchHost } from '../../core/broker/hosts.js';
import { effectiveHost } from '../../core/broker/policy.js';
import { capabilityFromRegistry, tokenAllowsCapability } from '../../core/broker/resolve-capability.js';
import { matchPassthrough, type PassthroughMatch } from '../../core/broker/passthrough.js';

function capabilitiesOf(
  snapshot: BrokerSnapshot,
  registry: RegistryIndex,
  credential: Credential,
): Capability[] {
  const out: Capability[] = [];
  const provider = registry.getProvider(credential.provider);
  if (provider) for (const c of provider.capabilities) out.push(capabilityFromRegistry(c));
  for (const c of snapshot.capabilities.values()) {
    if (c.source === 'custom' && c.credentialId === credential.id && c.provider === credential.provider) {
      out.push(c);
    }
  }
  return out;
}

/**
 * Credentials that can serve `policyHost` through at least one capability the token grants, sorted by
 * id (a token pinned to a credential sees only that one).
 */
export function credentialsForHost(
  snapshot: BrokerSnapshot,
  registry: RegistryIndex,
  policyHost: string,
  token: Pick<ProxyTokenRecord, 'capabilities' | 'credential'>,
): Credential[] {
  const out: Credential[] = [];
  for (const cred of snapshot.credentials.values()) {
    if (token.credential !== undefined && cred.id !== token.credential) continue;
    if (!cred.hosts.some((h) => matchHost(h, policyHost))) continue;
    const served = capabilitiesOf(snapshot, registry, cred).some((cap) => {
      if (!tokenAllowsCapability(token.capabilities, cap)) return false;
      const host = effectiveHost(cap, cred);
      return host.ok && matchHost(host.value, policyHost);
    });
    if (served) out.push(cred);
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

/** The capability (and its credential) for METHOD path on a host: the first credential that matches. */
export function matchInner(input: {
  readonly snapshot: BrokerSnapshot;
  readonly registry: RegistryIndex;
  readonly credentials: readonly Credential[];
  readonly method: string;
  readonly path: string;
  readonly tokenCapabilities: readonly string[];
}): Result<PassthroughMatch & { credential: Credential }> {
  let first: Result<PassthroughMatch> | undefined;
  for (const cred of input.credentials) {
    const m = matchPassthrough({
      snapshot: input.snapshot,
      registry: input.registry,
      credentialId: cred.id,
      method: input.method,
      path: input.path,
      tokenCapabilities: input.tokenCapabilities,
    });
    if (m.ok) return ok({ ...m.value, credential: cred });
    first ??= m;
  }
  return first && !first.ok ? first : fail('policy_violation', `no capability allows ${input.method}`);
}

/**
 * Bindings (capabilities.json): bind a capability to a secret for one scope + consumer, unbind by filter,
 * list. Writes are read-modify-write under the vault lock (files.ts). Any thread or the CLI.
 */
import { AivaultError } from '../../core/errors.js';
import { secretIdFromRef } from '../../core/broker/resolve-credential.js';
import type { Binding, Scope } from '../../core/broker/types.js';
import type { RegistryIndex } from '../../core/registry/types.js';
import {
  mutateBindings,
  readBrokerFile,
  readCapabilitiesFile,
  type CatalogFiles,
  type CatalogPaths,
} from './files.js';
import { usage, type MutationOptions } from './input.js';
import { bindingSchema } from './schema.js';
import { validate } from '../../core/validate.js';

export interface BindInput {
  readonly capabilityId: string;
  readonly secretRef: string;
  readonly scope?: Scope;
  readonly consumer?: string;
}

function sameBindingKey(
  b: Binding,
  capabilityId: string,
  scope: Scope,
  consumer: string | undefined,
): boolean {
  return (
    b.capabilityId === capabilityId &&
    b.scope.kind === scope.kind &&
    b.scope.workspaceId === scope.workspaceId &&
    b.scope.groupId === scope.groupId &&
    b.consumer === consumer
  );
}

/** Bind (or re-bind) a capability to a secret for one scope + consumer key. */
export async function bind(
  paths: CatalogPaths,
  registry: RegistryIndex,
  input: BindInput,
  options: MutationOptions = {},
): Promise<Binding> {
  const binding = {
    capabilityId: input.capabilityId,
    secretRef: `vault:secret:${secretIdFromRef(input.secretRef)}`,
    scope: input.scope ?? { kind: 'global' as const },
    ...(input.consumer !== undefined ? { consumer: input.consumer } : {}),
  };
  const checked = validate(bindingSchema, binding);
  if (!checked.ok) throw usage('invalid binding (capability, secret ref, scope or consumer)');
  if (options.secrets && !options.secrets.some((s) => s.id === secretIdFromRef(input.secretRef))) {
    throw new AivaultError('not_found', `secret ${secretIdFromRef(input.secretRef)} does not exist`);
  }
  const broker = await readBrokerFile(paths.brokerJson);
  if (
    !registry.getCapability(input.capabilityId) &&
    !broker.capabilities.some((c) => c.id === input.capabilityId)
  ) {
    throw new AivaultError('capability_not_found', `capability ${input.capabilityId} does not exist`);
  }
  return mutateBindings(paths, (doc) => {
    doc.bindings = doc.bindings.filter(
      (b) => !sameBindingKey(b, binding.capabilityId, binding.scope, input.consumer),
    );
    doc.bindings.push(checked.value);
    return checked.value as Binding;
  });
}

export interface BindingFilter {
  readonly capabilityId?: string;
  readonly scope?: Scope;
  readonly consumer?: string;
}

function matchesFilter(b: Binding, filter: BindingFilter): boolean {
  if (filter.capabilityId !== undefined && b.capabilityId !== filter.capabilityId) return false;
  if (filter.consumer !== undefined && b.consumer !== filter.consumer) return false;
  if (filter.scope !== undefined) {
    const s = filter.scope;
    if (b.scope.kind !== s.kind || b.scope.workspaceId !== s.workspaceId || b.scope.groupId !== s.groupId)
      return false;
  }
  return true;
}

/** Remove bindings matching the filter (capabilityId required). Returns how many were removed. */
export async function unbind(
  paths: CatalogPaths,
  filter: BindingFilter & { capabilityId: string },
): Promise<number> {
  return mutateBindings(paths, (doc) => {
    const keep = doc.bindings.filter((b) => !matchesFilter(b as Binding, filter));
    const removed = doc.bindings.length - keep.length;
    if (removed === 0) throw new AivaultError('not_found', `no binding for ${filter.capabilityId} matches`);
    doc.bindings = keep;
    return removed;
  });
}

export async function listBindings(
  paths: CatalogFiles,
  filter: BindingFilter = {},
): Promise<readonly Binding[]> {
  const doc = await readCapabilitiesFile(paths.capabilitiesJson);
  return doc.bindings.filter((b) => matchesFilter(b as Binding, filter)) as Binding[];
}

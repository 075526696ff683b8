/**
 * Secret metadata projections (pure): a record → SecretMeta (names, scope, provider, times; never a value)
 * → the catalog's SecretInfo.
 */
import type { Scope, SecretInfo } from '../../core/broker/types.js';
import type { SecretRecord } from './records.js';
import { checkScope } from './records.js';

export interface GroupRef {
  readonly workspaceId: string;
  readonly groupId: string;
}

/** Secret metadata returned to callers. There is no value field. */
export interface SecretMeta {
  readonly id: string;
  readonly name: string;
  readonly aliases: readonly string[];
  readonly scope: Scope;
  readonly pinnedProvider?: string;
  readonly attachedGroups: readonly GroupRef[];
  readonly createdAtMs: number;
  readonly updatedAtMs: number;
  readonly rotatedAtMs?: number;
}

export interface SecretFilter {
  readonly kind?: Scope['kind'];
  readonly workspaceId?: string;
  readonly groupId?: string;
  readonly name?: string;
  readonly pinnedProvider?: string;
}

export function toSecretMeta(rec: SecretRecord): SecretMeta {
  return Object.freeze({
    id: rec.id,
    name: rec.name,
    aliases: Object.freeze([...rec.aliases]),
    scope: checkScope(rec.scope),
    ...(rec.pinnedProvider !== undefined ? { pinnedProvider: rec.pinnedProvider } : {}),
    attachedGroups: Object.freeze(rec.attachedGroups.map((g) => Object.freeze({ ...g }))),
    createdAtMs: rec.createdAtMs,
    updatedAtMs: rec.updatedAtMs,
    ...(rec.rotatedAtMs !== undefined ? { rotatedAtMs: rec.rotatedAtMs } : {}),
  });
}

export function toSecretInfo(meta: SecretMeta): SecretInfo {
  return {
    id: meta.id,
    name: meta.name,
    scope: meta.scope,
    attachedGroups: meta.attachedGroups,
    ...(meta.pinnedProvider !== undefined ? { pinnedProvider: meta.pinnedProvider } : {}),
  };
}

// ───────────────────────── helpers ─────────────────────────

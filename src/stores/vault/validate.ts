/**
 * Secret ids and input validation for vault writes (pure): new ids, names, aliases, scope ids, and the
 * name-uniqueness check across records.
 */
import type { Scope } from '../../core/broker/types.js';
import { AivaultError } from '../../core/errors.js';
import type { SecretRecord } from './records.js';
import { NAME_RE, SCOPE_ID_RE, sameScope } from './records.js';
import { randomBytes } from './sodium.js';

const B32 = 'abcdefghijklmnopqrstuvwxyz234567';

/** 16 random bytes as 26 lower-case base32 characters. */
export function newSecretId(): string {
  const bytes = randomBytes(16);
  let bits = 0;
  let acc = 0;
  let out = '';
  for (const b of bytes) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += B32[(acc >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += B32[(acc << (5 - bits)) & 31];
  return out;
}

export function checkName(name: string, field: string): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new AivaultError('usage', `${field} must match ${NAME_RE.source}`, { field });
  }
  return name;
}

export function checkAliases(aliases: readonly string[] | undefined, name: string): string[] {
  const out = [...new Set((aliases ?? []).map((a) => checkName(a, 'aliases')))];
  if (out.includes(name))
    throw new AivaultError('usage', 'an alias may not repeat the secret name', { field: 'aliases' });
  if (out.length > 64) throw new AivaultError('usage', 'at most 64 aliases', { field: 'aliases' });
  return out;
}

export function checkScopeId(value: string, field: string): string {
  if (typeof value !== 'string' || !SCOPE_ID_RE.test(value)) {
    throw new AivaultError('usage', `${field} must match ${SCOPE_ID_RE.source}`, { field });
  }
  return value;
}

export function valueBytes(value: string | Uint8Array): { bytes: Buffer; owned: boolean } {
  if (typeof value === 'string') return { bytes: Buffer.from(value, 'utf8'), owned: true };
  if (value instanceof Uint8Array)
    return { bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength), owned: false };
  throw new AivaultError('usage', 'secret value must be a string or bytes', { field: 'value' });
}

export function namesOf(rec: { name: string; aliases: readonly string[] }): string[] {
  return [rec.name, ...rec.aliases];
}

export function scopeLabel(scope: Scope): string {
  if (scope.kind === 'global') return 'global scope';
  if (scope.kind === 'workspace') return `workspace ${scope.workspaceId ?? ''}`;
  return `group ${scope.workspaceId ?? ''}/${scope.groupId ?? ''}`;
}

export function ensureUnique(
  all: readonly SecretRecord[],
  scope: Scope,
  names: readonly string[],
  selfId?: string,
): void {
  for (const other of all) {
    if (other.id === selfId || !sameScope(other.scope, scope)) continue;
    const clash = namesOf(other).find((n) => names.includes(n));
    if (clash !== undefined) {
      throw new AivaultError('conflict', `a secret named ${clash} already exists in ${scopeLabel(scope)}`, {
        name: clash,
        secretId: other.id,
      });
    }
  }
}

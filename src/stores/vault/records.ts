/**
 * On-disk shapes of vault.json and secrets/<id>.json, validated (core/validate.ts) on every read. A file that does
 * not match is `storage_corrupt` with a message naming the file and the dot-path of the first bad field.
 * Records hold metadata + ciphertext only; there is no field that could hold a plaintext value.
 */
import type { Scope } from '../../core/broker/types.js';
import { AivaultError } from '../../core/errors.js';
import {
  dotPath,
  v,
  validate,
  type Issue,
  type Schema,
  nonEmpty,
  nonNegativeInt,
} from '../../core/validate.js';
import { readJsonFile } from './store.js';

export const SECRET_ID_RE = /^[a-z2-7]{26}$/;
export const NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
export const SCOPE_ID_RE = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$/;
export const PROVIDER_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

const matching = (re: RegExp, message?: string) => v.pipe(v.string(), v.regex(re, message));
const b64 = matching(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');
const hex = matching(/^[0-9a-f]+$/, 'must be lower-case hex');
const blob = v.strictObject({ nonce: b64, ciphertext: b64 });
const int = v.pipe(v.number(), v.safeInteger());
const intBetween = (min: number, max: number) =>
  v.pipe(v.number(), v.safeInteger(), v.minValue(min), v.maxValue(max));

export const scopeSchema = v.pipe(
  v.strictObject({
    kind: v.picklist(['global', 'workspace', 'group']),
    workspaceId: v.optional(matching(SCOPE_ID_RE)),
    groupId: v.optional(matching(SCOPE_ID_RE)),
  }),
  v.rawCheck(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const s = dataset.value;
    const needWs = s.kind !== 'global';
    const needGroup = s.kind === 'group';
    const at = (key: 'workspaceId' | 'groupId', needed: boolean) =>
      addIssue({
        message: `${needed ? 'required' : 'not allowed'} for ${s.kind} scope`,
        path: [{ type: 'object', origin: 'value', input: s, key, value: s[key] }],
      });
    if (needWs !== (s.workspaceId !== undefined)) at('workspaceId', needWs);
    if (needGroup !== (s.groupId !== undefined)) at('groupId', needGroup);
  }),
);

const groupRef = v.strictObject({
  workspaceId: matching(SCOPE_ID_RE),
  groupId: matching(SCOPE_ID_RE),
});

export const secretRecordSchema = v.strictObject({
  format: v.literal('aivault.secret.v1'),
  id: matching(SECRET_ID_RE),
  name: matching(NAME_RE),
  aliases: v.pipe(v.array(matching(NAME_RE)), v.maxLength(64)),
  scope: scopeSchema,
  pinnedProvider: v.optional(matching(PROVIDER_NAME_RE)),
  attachedGroups: v.pipe(v.array(groupRef), v.maxLength(1024)),
  createdAtMs: nonNegativeInt,
  updatedAtMs: nonNegativeInt,
  rotatedAtMs: v.optional(nonNegativeInt),
  aadVersion: int,
  alg: v.literal('xchacha20poly1305-ietf'),
  value: blob,
  wraps: v.pipe(
    v.array(v.strictObject({ kekId: hex, nonce: b64, ciphertext: b64 })),
    v.minLength(1),
    v.maxLength(4),
  ),
});

export type SecretRecord = v.InferOutput<typeof secretRecordSchema>;

const kdfSchema = v.strictObject({
  alg: v.literal('argon2id'),
  salt: b64,
  memoryKiB: intBetween(8192, 4 * 1024 * 1024),
  timeCost: intBetween(1, 64),
  parallelism: intBetween(1, 16),
});
export type KdfParams = v.InferOutput<typeof kdfSchema>;

export const providerSectionSchema = v.variant('kind', [
  v.strictObject({ kind: v.literal('file'), path: nonEmpty }),
  v.strictObject({ kind: v.literal('env'), envVar: matching(/^[A-Za-z_][A-Za-z0-9_]*$/) }),
  v.strictObject({ kind: v.literal('passphrase'), kdf: kdfSchema, check: blob }),
  v.strictObject({ kind: v.literal('keychain'), service: nonEmpty, account: nonEmpty }),
]);
export type ProviderSection = v.InferOutput<typeof providerSectionSchema>;
export type ProviderKind = ProviderSection['kind'];

export const vaultMetaSchema = v.strictObject({
  format: v.literal('aivault.vault.v1'),
  /** Random creation id (hex); the dev MAC and the passphrase check record bind it. */
  vaultId: hex,
  createdAtMs: nonNegativeInt,
  provider: providerSectionSchema,
  /** Id of the live KEK; every secret has a DEK wrap with this id. */
  kekId: hex,
  dev: v.optional(v.strictObject({ enabled: v.boolean(), mac: b64 })),
  rotatedAtMs: v.optional(nonNegativeInt),
  /** Policy files carry a MAC (policy-seal.ts). Passphrase vaults only; bound into the check record. */
  policySeal: v.optional(v.boolean()),
});
export type VaultMeta = v.InferOutput<typeof vaultMetaSchema>;

/** Validate `value` against `schema`; on failure `storage_corrupt` naming `file` and the bad field. */
export function parseFile<T>(schema: Schema<T>, value: unknown, file: string): T {
  const res = validate(schema, value);
  if (res.ok) return res.value;
  const issue: Issue | undefined = res.issues[0];
  const field = issue ? dotPath(issue.path) : '(root)';
  const why = issue?.message ?? 'invalid';
  throw new AivaultError(
    'storage_corrupt',
    `${file}: field ${field} is invalid (${why}); the file is corrupt or was hand-edited`,
    {
      file,
      field,
    },
  );
}

export async function readValidated<T>(schema: Schema<T>, file: string): Promise<T | undefined> {
  const raw = await readJsonFile(file);
  if (raw === undefined) return undefined;
  return parseFile(schema, raw, file);
}

export function sameScope(a: Scope, b: Scope): boolean {
  return a.kind === b.kind && a.workspaceId === b.workspaceId && a.groupId === b.groupId;
}

/** Normalise a caller-supplied scope: drops ids the kind does not use is NOT done — extra ids are a usage error. */
export function checkScope(scope: Scope): Scope {
  const res = validate(scopeSchema, { ...scope });
  if (!res.ok) {
    const issue = res.issues[0];
    const field = issue ? ['scope', ...issue.path.map(String)].join('.') : 'scope';
    throw new AivaultError('usage', `invalid ${field}: ${issue?.message ?? 'invalid'}`, { field });
  }
  const s = res.value;
  return Object.freeze({
    kind: s.kind,
    ...(s.workspaceId !== undefined ? { workspaceId: s.workspaceId } : {}),
    ...(s.groupId !== undefined ? { groupId: s.groupId } : {}),
  });
}

/**
 * On-disk shapes of vault.json and secrets/<id>.json, validated with zod on every read. A file that does
 * not match is `storage_corrupt` with a message naming the file and the dot-path of the first bad field.
 * Records hold metadata + ciphertext only; there is no field that could hold a plaintext value.
 */
import { z } from 'zod';
import type { Scope } from '../../core/broker/types.js';
import { AivaultError } from '../../core/errors.js';
import { readJsonFile } from './store.js';

export const SECRET_ID_RE = /^[a-z2-7]{26}$/;
export const NAME_RE = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
export const SCOPE_ID_RE = /^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$/;
export const PROVIDER_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,63}$/;

const b64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');
const hex = z.string().regex(/^[0-9a-f]+$/, 'must be lower-case hex');
const blob = z.strictObject({ nonce: b64, ciphertext: b64 });

export const scopeSchema = z
  .strictObject({
    kind: z.enum(['global', 'workspace', 'group']),
    workspaceId: z.string().regex(SCOPE_ID_RE).optional(),
    groupId: z.string().regex(SCOPE_ID_RE).optional(),
  })
  .superRefine((s, ctx) => {
    const needWs = s.kind !== 'global';
    const needGroup = s.kind === 'group';
    if (needWs !== (s.workspaceId !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['workspaceId'],
        message: `${needWs ? 'required' : 'not allowed'} for ${s.kind} scope`,
      });
    }
    if (needGroup !== (s.groupId !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['groupId'],
        message: `${needGroup ? 'required' : 'not allowed'} for ${s.kind} scope`,
      });
    }
  });

const groupRef = z.strictObject({
  workspaceId: z.string().regex(SCOPE_ID_RE),
  groupId: z.string().regex(SCOPE_ID_RE),
});

export const secretRecordSchema = z.strictObject({
  format: z.literal('aivault.secret.v1'),
  id: z.string().regex(SECRET_ID_RE),
  name: z.string().regex(NAME_RE),
  aliases: z.array(z.string().regex(NAME_RE)).max(64),
  scope: scopeSchema,
  pinnedProvider: z.string().regex(PROVIDER_NAME_RE).optional(),
  attachedGroups: z.array(groupRef).max(1024),
  createdAtMs: z.number().int().nonnegative(),
  updatedAtMs: z.number().int().nonnegative(),
  rotatedAtMs: z.number().int().nonnegative().optional(),
  aadVersion: z.number().int(),
  alg: z.literal('xchacha20poly1305-ietf'),
  value: blob,
  wraps: z
    .array(z.strictObject({ kekId: hex, nonce: b64, ciphertext: b64 }))
    .min(1)
    .max(4),
});

export type SecretRecord = z.infer<typeof secretRecordSchema>;

const kdfSchema = z.strictObject({
  alg: z.literal('argon2id'),
  salt: b64,
  memoryKiB: z
    .number()
    .int()
    .min(8192)
    .max(4 * 1024 * 1024),
  timeCost: z.number().int().min(1).max(64),
  parallelism: z.number().int().min(1).max(16),
});
export type KdfParams = z.infer<typeof kdfSchema>;

export const providerSectionSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('file'), path: z.string().min(1) }),
  z.strictObject({ kind: z.literal('env'), envVar: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/) }),
  z.strictObject({ kind: z.literal('passphrase'), kdf: kdfSchema, check: blob }),
  z.strictObject({ kind: z.literal('keychain'), service: z.string().min(1), account: z.string().min(1) }),
]);
export type ProviderSection = z.infer<typeof providerSectionSchema>;
export type ProviderKind = ProviderSection['kind'];

export const vaultMetaSchema = z.strictObject({
  format: z.literal('aivault.vault.v1'),
  /** Random creation id (hex); the dev MAC and the passphrase check record bind it. */
  vaultId: hex,
  createdAtMs: z.number().int().nonnegative(),
  provider: providerSectionSchema,
  /** Id of the live KEK; every secret has a DEK wrap with this id. */
  kekId: hex,
  dev: z.strictObject({ enabled: z.boolean(), mac: b64 }).optional(),
  rotatedAtMs: z.number().int().nonnegative().optional(),
  /** Policy files carry a MAC (policy-seal.ts). Passphrase vaults only; bound into the check record. */
  policySeal: z.boolean().optional(),
});
export type VaultMeta = z.infer<typeof vaultMetaSchema>;

/** Validate `value` against `schema`; on failure `storage_corrupt` naming `file` and the bad field. */
export function parseFile<T>(schema: z.ZodType<T>, value: unknown, file: string): T {
  const res = schema.safeParse(value);
  if (res.success) return res.data;
  const issue = res.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.map(String).join('.') : '(root)';
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

export async function readValidated<T>(schema: z.ZodType<T>, file: string): Promise<T | undefined> {
  const raw = await readJsonFile(file);
  if (raw === undefined) return undefined;
  return parseFile(schema, raw, file);
}

export function sameScope(a: Scope, b: Scope): boolean {
  return a.kind === b.kind && a.workspaceId === b.workspaceId && a.groupId === b.groupId;
}

/** Normalise a caller-supplied scope: drops ids the kind does not use is NOT done — extra ids are a usage error. */
export function checkScope(scope: Scope): Scope {
  const res = scopeSchema.safeParse({ ...scope });
  if (!res.success) {
    const issue = res.error.issues[0];
    const field = issue ? ['scope', ...issue.path.map(String)].join('.') : 'scope';
    throw new AivaultError('usage', `invalid ${field}: ${issue?.message ?? 'invalid'}`, { field });
  }
  const s = res.data;
  return Object.freeze({
    kind: s.kind,
    ...(s.workspaceId !== undefined ? { workspaceId: s.workspaceId } : {}),
    ...(s.groupId !== undefined ? { groupId: s.groupId } : {}),
  });
}

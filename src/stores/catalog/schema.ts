/**
 * zod schemas for the broker's store files (broker.json, capabilities.json) and the error formatter
 * that turns issues into `file: dot.path: reason` lines. Schemas are strict: a field we don't know is
 * treated as tampering, never ignored, because ignoring is how a hand edit silently changes meaning.
 */
import { z } from 'zod';
import { AivaultError } from '../../core/errors.js';
import { isValidHostPattern } from '../../core/broker/hosts.js';
import { normalizePath } from '../../core/broker/path.js';
import { HTTP_METHODS } from '../../core/registry/types.js';
import { ID_PATTERN } from '../../core/broker/ids.js';

export { ID_PATTERN };

const id = z.string().regex(ID_PATTERN, 'must be an id (letters, digits, . _ - /)');
const nonEmpty = z.string().min(1);
const positiveInt = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

const headerTemplate = z.strictObject({ header_name: nonEmpty, value_template: nonEmpty });
const queryTemplate = z.strictObject({ param_name: nonEmpty, value_template: nonEmpty.optional() });

export const authSpecSchema = z.union([
  z.strictObject({ header: headerTemplate }),
  z.strictObject({ query: queryTemplate }),
  z.strictObject({ path: z.strictObject({ prefix_template: nonEmpty }) }),
  z.strictObject({
    basic: z.strictObject({
      username_template: z.string().optional(),
      password_template: z.string().optional(),
    }),
  }),
  z.strictObject({ multi_header: z.array(headerTemplate).min(1) }),
  z.strictObject({ multi_query: z.array(queryTemplate).min(1) }),
  z.strictObject({
    oauth2: z.strictObject({
      grant_type: z.enum(['refresh_token', 'client_credentials']),
      token_endpoint: z.string().regex(/^https:\/\/[^/?#@\s]+\/?[^\s#]*$/, 'must be an https URL'),
      scopes: z.array(nonEmpty).optional(),
      inject: headerTemplate.optional(),
    }),
  }),
  z.strictObject({ aws_sigv4: z.strictObject({ service: nonEmpty, region: nonEmpty }) }),
  z.strictObject({
    hmac: z.strictObject({
      algorithm: z.enum(['sha256', 'sha512', 'sha1']),
      header_name: nonEmpty,
      value_template: nonEmpty,
      encoding: z.enum(['hex', 'base64']).optional(),
      key_encoding: z.enum(['utf8', 'base64']).optional(),
    }),
  }),
  z.strictObject({ mtls: z.strictObject({}) }),
]);

/** Stored hosts: canonical names or `*.suffix`; ports are kept syntactically valid (dev vaults). */
export const hostPatternSchema = z
  .string()
  .refine((h) => isValidHostPattern(h, { allowPort: true }), 'must be a lower-case DNS name or *.suffix');

/** Stored prefixes must already be canonical (what normalizePath returns), without a query. */
export const pathPrefixSchema = z.string().refine((p) => {
  const r = normalizePath(p);
  return r.ok && r.value.query === '' && r.value.path === p;
}, 'must be a canonical path prefix starting with /');

export const scopeSchema = z
  .strictObject({
    kind: z.enum(['global', 'workspace', 'group']),
    workspaceId: nonEmpty.optional(),
    groupId: nonEmpty.optional(),
  })
  .refine(
    (s) =>
      s.kind === 'global'
        ? s.workspaceId === undefined && s.groupId === undefined
        : s.kind === 'workspace'
          ? s.workspaceId !== undefined && s.groupId === undefined
          : s.workspaceId !== undefined && s.groupId !== undefined,
    'scope ids do not match its kind',
  );

export const storedCredentialSchema = z
  .strictObject({
    id,
    provider: id,
    source: z.enum(['registry', 'custom']),
    secretRefs: z.record(nonEmpty, nonEmpty).refine((r) => Object.keys(r).length > 0, 'must not be empty'),
    auth: authSpecSchema.optional(),
    hosts: z.array(hostPatternSchema).optional(),
    params: z.record(nonEmpty, z.string()).optional(),
    workspaceId: nonEmpty.optional(),
    groupId: nonEmpty.optional(),
    createdAtMs: z.number().int().nonnegative(),
    /** Registry credential alternative id (registry credentials only; everything else is re-derived). */
    alternative: id.optional(),
  })
  .refine((c) => c.groupId === undefined || c.workspaceId !== undefined, {
    message: 'groupId needs workspaceId',
    path: ['groupId'],
  });

export const storedCapabilitySchema = z.strictObject({
  id,
  provider: id,
  credentialId: id,
  allow: z.strictObject({
    hosts: z.array(hostPatternSchema).length(1),
    methods: z.array(z.enum(HTTP_METHODS)).min(1),
    pathPrefixes: z.array(pathPrefixSchema).min(1),
  }),
  createdAtMs: z.number().int().nonnegative().optional(),
});

export const policySchema = z.strictObject({
  capabilityId: id,
  rateLimitPerMinute: positiveInt.optional(),
  maxRequestBodyBytes: positiveInt.optional(),
  maxResponseBodyBytes: positiveInt.optional(),
  responseBlocklist: z.array(nonEmpty).optional(),
  /** Operator approval before each call (`always`) or once per caller token for a while (`once`). */
  approval: z.enum(['once', 'always']).optional(),
});

export const bindingSchema = z.strictObject({
  capabilityId: id,
  secretRef: nonEmpty,
  scope: scopeSchema,
  consumer: nonEmpty.optional(),
});

function uniqueBy<T>(key: (item: T) => string, what: string) {
  return (items: T[], ctx: z.RefinementCtx) => {
    const seen = new Set<string>();
    items.forEach((item, i) => {
      const k = key(item);
      if (seen.has(k)) ctx.addIssue({ code: 'custom', message: `duplicate ${what} ${k}`, path: [i] });
      seen.add(k);
    });
  };
}

export const brokerFileSchema = z.strictObject({
  version: z.literal(1),
  credentials: z.array(storedCredentialSchema).superRefine(uniqueBy((c) => c.id, 'credential id')),
  capabilities: z.array(storedCapabilitySchema).superRefine(uniqueBy((c) => c.id, 'capability id')),
  policies: z.array(policySchema).superRefine(uniqueBy((p) => p.capabilityId, 'policy for')),
});

export const capabilitiesFileSchema = z.strictObject({
  version: z.literal(1),
  bindings: z.array(bindingSchema),
});

export type StoredCredential = z.infer<typeof storedCredentialSchema>;
export type StoredCapability = z.infer<typeof storedCapabilitySchema>;
export type BrokerFile = z.infer<typeof brokerFileSchema>;
export type CapabilitiesFile = z.infer<typeof capabilitiesFileSchema>;

export const emptyBrokerFile = (): BrokerFile => ({
  version: 1,
  credentials: [],
  capabilities: [],
  policies: [],
});
export const emptyCapabilitiesFile = (): CapabilitiesFile => ({ version: 1, bindings: [] });

/** `a.b.0.c` for an issue path; `(root)` for the document itself. */
export function dotPath(path: readonly PropertyKey[]): string {
  return path.length === 0 ? '(root)' : path.map((p) => String(p)).join('.');
}

/**
 * Validate `raw` (already JSON-parsed) against `schema`; on failure throw storage_corrupt listing every
 * issue as `dot.path: reason`. Messages never include values (a hand-edited file might hold a secret).
 */
export function parseStoreFile<T>(schema: z.ZodType<T>, raw: unknown, file: string): T {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => `${dotPath(issue.path)}: ${issue.message}`);
  throw new AivaultError('storage_corrupt', `${file} is corrupt or was hand-edited: ${lines.join('; ')}`, {
    file,
    fields: result.error.issues.map((issue) => dotPath(issue.path)).join(','),
  });
}

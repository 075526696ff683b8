/**
 * Schemas for the broker's store files (broker.json, capabilities.json) and the error formatter that
 * turns issues into `file: dot.path: reason` lines. Schemas are strict: a field we don't know is treated
 * as tampering, never ignored, because ignoring is how a hand edit silently changes meaning.
 */
import { AivaultError } from '../../core/errors.js';
import { isValidHostPattern } from '../../core/broker/hosts.js';
import { normalizePath } from '../../core/broker/path.js';
import { HTTP_METHODS } from '../../core/registry/types.js';
import { ID_PATTERN } from '../../core/broker/ids.js';
import {
  dotPath,
  eachItem,
  fieldCheck,
  v,
  validate,
  type Schema,
  nonEmpty,
  nonNegativeInt,
  positiveInt,
} from '../../core/validate.js';

export { ID_PATTERN, dotPath };

const id = v.pipe(v.string(), v.regex(ID_PATTERN, 'must be an id (letters, digits, . _ - /)'));

const headerTemplate = v.strictObject({ header_name: nonEmpty, value_template: nonEmpty });
const queryTemplate = v.strictObject({ param_name: nonEmpty, value_template: v.optional(nonEmpty) });

export const authSpecSchema = v.union([
  v.strictObject({ header: headerTemplate }),
  v.strictObject({ query: queryTemplate }),
  v.strictObject({ path: v.strictObject({ prefix_template: nonEmpty }) }),
  v.strictObject({
    basic: v.strictObject({
      username_template: v.optional(v.string()),
      password_template: v.optional(v.string()),
    }),
  }),
  v.strictObject({ multi_header: v.pipe(v.array(headerTemplate), v.minLength(1)) }),
  v.strictObject({ multi_query: v.pipe(v.array(queryTemplate), v.minLength(1)) }),
  v.strictObject({
    oauth2: v.strictObject({
      grant_type: v.picklist(['refresh_token', 'client_credentials']),
      token_endpoint: v.pipe(v.string(), v.regex(/^https:\/\/[^/?#@\s]+\/?[^\s#]*$/, 'must be an https URL')),
      scopes: v.optional(v.array(nonEmpty)),
      inject: v.optional(headerTemplate),
    }),
  }),
  v.strictObject({ aws_sigv4: v.strictObject({ service: nonEmpty, region: nonEmpty }) }),
  v.strictObject({
    hmac: v.strictObject({
      algorithm: v.picklist(['sha256', 'sha512', 'sha1']),
      header_name: nonEmpty,
      value_template: nonEmpty,
      encoding: v.optional(v.picklist(['hex', 'base64'])),
      key_encoding: v.optional(v.picklist(['utf8', 'base64'])),
    }),
  }),
  v.strictObject({ mtls: v.strictObject({}) }),
]);

/** Stored hosts: canonical names or `*.suffix`; ports are kept syntactically valid (dev vaults). */
export const hostPatternSchema = v.pipe(
  v.string(),
  v.check((h) => isValidHostPattern(h, { allowPort: true }), 'must be a lower-case DNS name or *.suffix'),
);

/** Stored prefixes must already be canonical (what normalizePath returns), without a query. */
export const pathPrefixSchema = v.pipe(
  v.string(),
  v.check((p) => {
    const r = normalizePath(p);
    return r.ok && r.value.query === '' && r.value.path === p;
  }, 'must be a canonical path prefix starting with /'),
);

export const scopeSchema = v.pipe(
  v.strictObject({
    kind: v.picklist(['global', 'workspace', 'group']),
    workspaceId: v.optional(nonEmpty),
    groupId: v.optional(nonEmpty),
  }),
  v.check(
    (s) =>
      s.kind === 'global'
        ? s.workspaceId === undefined && s.groupId === undefined
        : s.kind === 'workspace'
          ? s.workspaceId !== undefined && s.groupId === undefined
          : s.workspaceId !== undefined && s.groupId !== undefined,
    'scope ids do not match its kind',
  ),
);

export const storedCredentialSchema = v.pipe(
  v.strictObject({
    id,
    provider: id,
    source: v.picklist(['registry', 'custom']),
    secretRefs: v.pipe(
      v.record(nonEmpty, nonEmpty),
      v.check((r) => Object.keys(r).length > 0, 'must not be empty'),
    ),
    auth: v.optional(authSpecSchema),
    hosts: v.optional(v.array(hostPatternSchema)),
    params: v.optional(v.record(nonEmpty, v.string())),
    workspaceId: v.optional(nonEmpty),
    groupId: v.optional(nonEmpty),
    createdAtMs: nonNegativeInt,
    /** Registry credential alternative id (registry credentials only; everything else is re-derived). */
    alternative: v.optional(id),
  }),
  fieldCheck('groupId', (c) =>
    c.groupId === undefined || c.workspaceId !== undefined ? undefined : 'groupId needs workspaceId',
  ),
);

export const storedCapabilitySchema = v.strictObject({
  id,
  provider: id,
  credentialId: id,
  allow: v.strictObject({
    hosts: v.pipe(v.array(hostPatternSchema), v.length(1)),
    methods: v.pipe(v.array(v.picklist(HTTP_METHODS)), v.minLength(1)),
    pathPrefixes: v.pipe(v.array(pathPrefixSchema), v.minLength(1)),
  }),
  createdAtMs: v.optional(nonNegativeInt),
});

export const policySchema = v.strictObject({
  capabilityId: id,
  rateLimitPerMinute: v.optional(positiveInt),
  maxRequestBodyBytes: v.optional(positiveInt),
  maxResponseBodyBytes: v.optional(positiveInt),
  responseBlocklist: v.optional(v.array(nonEmpty)),
  /** Operator approval before each call (`always`) or once per caller token for a while (`once`). */
  approval: v.optional(v.picklist(['once', 'always'])),
});

export const bindingSchema = v.strictObject({
  capabilityId: id,
  secretRef: nonEmpty,
  scope: scopeSchema,
  consumer: v.optional(nonEmpty),
});

/** Each key once: a second item with a key already seen is reported at that item. */
function uniqueBy<T>(key: (item: T) => string, what: string) {
  return eachItem<T>(() => {
    const seen = new Set<string>();
    return (item) => {
      const k = key(item);
      if (seen.has(k)) return `duplicate ${what} ${k}`;
      seen.add(k);
      return undefined;
    };
  });
}

export const brokerFileSchema = v.strictObject({
  version: v.literal(1),
  credentials: v.pipe(
    v.array(storedCredentialSchema),
    uniqueBy((c: StoredCredential) => c.id, 'credential id'),
  ),
  capabilities: v.pipe(
    v.array(storedCapabilitySchema),
    uniqueBy((c: StoredCapability) => c.id, 'capability id'),
  ),
  policies: v.pipe(
    v.array(policySchema),
    uniqueBy((p: v.InferOutput<typeof policySchema>) => p.capabilityId, 'policy for'),
  ),
});

export const capabilitiesFileSchema = v.strictObject({
  version: v.literal(1),
  bindings: v.array(bindingSchema),
});

export type StoredCredential = v.InferOutput<typeof storedCredentialSchema>;
export type StoredCapability = v.InferOutput<typeof storedCapabilitySchema>;
export type BrokerFile = v.InferOutput<typeof brokerFileSchema>;
export type CapabilitiesFile = v.InferOutput<typeof capabilitiesFileSchema>;

export const emptyBrokerFile = (): BrokerFile => ({
  version: 1,
  credentials: [],
  capabilities: [],
  policies: [],
});
export const emptyCapabilitiesFile = (): CapabilitiesFile => ({ version: 1, bindings: [] });

/**
 * Validate `raw` (already JSON-parsed) against `schema`; on failure throw storage_corrupt listing every
 * issue as `dot.path: reason`. Messages never include values (a hand-edited file might hold a secret).
 */
export function parseStoreFile<T>(schema: Schema<T>, raw: unknown, file: string): T {
  const result = validate(schema, raw);
  if (result.ok) return result.value;
  const lines = result.issues.map((issue) => `${dotPath(issue.path)}: ${issue.message}`);
  throw new AivaultError('storage_corrupt', `${file} is corrupt or was hand-edited: ${lines.join('; ')}`, {
    file,
    fields: result.issues.map((issue) => dotPath(issue.path)).join(','),
  });
}

/**
 * Shapes of the provider registry (registry/*.json) and of the compiled, frozen index built from it.
 * Registry JSON keeps the seed's snake_case auth fields (`header_name`, `value_template`) so published
 * examples stay valid; everything else is camelCase.
 */

export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

export interface HeaderTemplate {
  readonly header_name: string;
  readonly value_template: string;
}
export interface QueryTemplate {
  readonly param_name: string;
  /** Defaults to `{{secret}}`. */
  readonly value_template?: string;
}

export type OAuth2GrantType = 'refresh_token' | 'client_credentials';

/** Exactly one key per spec (externally tagged, fail closed on zero or many). */
export type AuthSpec =
  | { readonly header: HeaderTemplate }
  | { readonly query: QueryTemplate }
  | { readonly path: { readonly prefix_template: string } }
  | { readonly basic: { readonly username_template?: string; readonly password_template?: string } }
  | { readonly multi_header: readonly HeaderTemplate[] }
  | { readonly multi_query: readonly QueryTemplate[] }
  | {
      readonly oauth2: {
        readonly grant_type: OAuth2GrantType;
        readonly token_endpoint: string;
        readonly scopes?: readonly string[];
        /** How the access token is sent; default header authorization: Bearer {{access_token}}. */
        readonly inject?: HeaderTemplate;
        /** Public client id used when the token secret holds none (e.g. the Codex CLI login). */
        readonly client_id?: string;
        /** Non-secret fields of the token secret that `extra_inject` may use (e.g. `account_id`). */
        readonly identity_fields?: readonly string[];
        /** Further headers sent with the token, rendered from `identity_fields` only. */
        readonly extra_inject?: readonly HeaderTemplate[];
      };
    }
  | { readonly aws_sigv4: { readonly service: string; readonly region: string } }
  | {
      readonly hmac: {
        readonly algorithm: 'sha256' | 'sha512' | 'sha1';
        readonly header_name: string;
        /** e.g. `{{signature}}` or `t={{timestamp}},v1={{signature}}` */
        readonly value_template: string;
        readonly encoding?: 'hex' | 'base64';
        /**
         * How the secret holds the key: `utf8` (default, the text is the key) or `base64` (the key bytes,
         * standard or url-safe base64; a leading `whsec_` as in Svix signing secrets is dropped).
         */
        readonly key_encoding?: 'utf8' | 'base64';
      };
    }
  | { readonly mtls: Readonly<Record<string, never>> };

export const AUTH_TYPES = [
  'header',
  'query',
  'path',
  'basic',
  'multi_header',
  'multi_query',
  'oauth2',
  'aws_sigv4',
  'hmac',
  'mtls',
] as const;
export type AuthType = (typeof AUTH_TYPES)[number];

export interface CapabilityAllow {
  /** Exactly one host (or one wildcard pattern `*.example.com` for per-tenant providers). */
  readonly hosts: readonly string[];
  readonly methods: readonly HttpMethod[];
  /** Non-empty; `["/"]` is the explicit allow-all. */
  readonly pathPrefixes: readonly string[];
}

/** Hints shown by `capability describe`: never used for policy. */
export interface CapabilityDocs {
  readonly summary?: string;
  readonly contentType?: 'json' | 'multipart' | 'form' | 'none' | 'binary';
  readonly example?: Readonly<Record<string, unknown>>;
  readonly docsUrl?: string;
}

export interface RegistryCapability {
  readonly id: string;
  readonly provider: string;
  readonly allow: CapabilityAllow;
  readonly docs?: CapabilityDocs;
}

/**
 * Documents a claimed secret whose value is a JSON object. Its top-level string fields are exposed as
 * template placeholders / strategy inputs (e.g. oauth2 `{"clientId","clientSecret","refreshToken"}`).
 */
export interface JsonSecretShape {
  readonly required: readonly string[];
  readonly optional?: readonly string[];
  readonly description?: string;
}

/**
 * Another way to serve some of a provider's capabilities (reference: `credentialAlternatives`): its own
 * claimed secrets, auth and hosts, only for the capabilities it lists, preferred over the provider's
 * main credential by `priority`, and with `upstreamPathPrefix` prepended to the request path upstream.
 * E.g. OpenAI's Codex capabilities served by a ChatGPT (Codex CLI) login on chatgpt.com.
 */
export interface CredentialAlternative {
  /** Unique within the provider; auto-provisioned credentials are named `<provider>-<id>`. */
  readonly id: string;
  readonly vaultSecrets: Readonly<Record<string, string>>;
  readonly jsonSecrets?: Readonly<Record<string, JsonSecretShape>>;
  readonly auth: AuthSpec;
  readonly hosts: readonly string[];
  /** Capability ids (of this provider) it may serve; it never serves any other. */
  readonly capabilities: readonly string[];
  /** Higher wins among credentials of the same scope tier that can serve a capability (default 0). */
  readonly priority?: number;
  /** Prepended to the policed path upstream (`/backend-api/codex` + `/responses`). */
  readonly upstreamPathPrefix?: string;
}

export interface RegistryProvider {
  readonly provider: string;
  readonly displayName?: string;
  readonly category?: string;
  readonly docsUrl?: string;
  /** Provider-level notes for `capability describe` (secret shape, per-tenant/region binding, required headers). */
  readonly summary?: string;
  /** Canonical secret name → template placeholder. Claimed names are unique across the registry. */
  readonly vaultSecrets: Readonly<Record<string, string>>;
  /** Claimed secrets whose value must be a JSON object, keyed by secret name (others are plain strings). */
  readonly jsonSecrets?: Readonly<Record<string, JsonSecretShape>>;
  readonly auth: AuthSpec;
  /** Hosts or single-label wildcard patterns (`*.myshopify.com`). */
  readonly hosts: readonly string[];
  readonly capabilities: readonly RegistryCapability[];
  readonly credentialAlternatives?: readonly CredentialAlternative[];
}

/** What a claimed secret name means. */
export interface SecretClaim {
  readonly secretName: string;
  readonly provider: string;
  readonly placeholder: string;
  /** Set when only credential alternatives claim the name: their ids (several may share one secret). */
  readonly alternatives?: readonly string[];
}

/** The compiled, deep-frozen registry. Built once at load; lookups are O(1). */
export interface RegistryIndex {
  readonly providers: readonly RegistryProvider[];
  getProvider(id: string): RegistryProvider | undefined;
  getCapability(id: string): RegistryCapability | undefined;
  /** Registry claim for a secret name, if any. */
  claimFor(secretName: string): SecretClaim | undefined;
  readonly capabilityCount: number;
}

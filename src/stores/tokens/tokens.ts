/**
 * Network tokens for the loopback HTTP listener (SPEC §8), stored in `<vault>/tokens.json` (0600, atomic
 * writes under the vault lock). Two classes that never overlap:
 *
 * - proxy tokens `avp_…`: opaque, random (32 bytes), short TTL, scoped to capability ids or `provider/*`
 *   wildcards, optionally pinned to one credential and a workspace/group context. Valid only on proxy
 *   routes (`/aivault/proxy`, `/v/…`, `/aivault/ws`).
 * - operator tokens `avo_…`: admin/CRUD routes and token minting over HTTP. Created by the CLI (which has
 *   direct vault access) and shown once.
 *
 * Only the SHA-256 of a token is stored; a presented token is hashed and compared in constant time
 * against every stored hash of its class. A string with the right prefix that is not in the file
 * (forged) is rejected exactly like an unknown one. Never holds a vault secret.
 */
import { hash, randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { AivaultError } from '../../core/errors.js';
import { v, validate, nonNegativeInt } from '../../core/validate.js';
import { withVaultLock } from '../vault/store.js';
import { readPolicyFile, writePolicyFile } from '../vault/policy-seal.js';
import { perGeneration, type Generation } from '../../core/threads/generation.js';

export const PROXY_TOKEN_PREFIX = 'avp_';
export const OPERATOR_TOKEN_PREFIX = 'avo_';
/** Default proxy token lifetime (15 minutes) and the upper bound any mint may ask for (7 days). */
export const DEFAULT_PROXY_TTL_MS = 15 * 60 * 1000;
export const MAX_PROXY_TTL_MS = 7 * 24 * 60 * 60 * 1000;
const TOKEN_BYTES = 32;
const SCOPE_ENTRY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$/;
const CONTEXT_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const TUNNEL_HOST = /^[a-z0-9_]([a-z0-9_.-]{0,252})(:\d{1,5})?$/;

const hashSchema = v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/));
const text = (min: number, max: number) => v.pipe(v.string(), v.minLength(min), v.maxLength(max));
const proxyRecordSchema = v.strictObject({
  kind: v.literal('proxy'),
  id: text(1, 64),
  hash: hashSchema,
  capabilities: v.pipe(v.array(text(1, 200)), v.minLength(1)),
  credential: v.optional(text(1, 128)),
  workspaceId: v.optional(text(1, 128)),
  groupId: v.optional(text(1, 128)),
  label: v.optional(text(0, 200)),
  /** HTTPS proxy: hosts the token may open a blind tunnel to (no TLS termination, no injection). */
  tunnelHosts: v.optional(v.pipe(v.array(text(1, 260)), v.maxLength(64))),
  createdAtMs: nonNegativeInt,
  expiresAtMs: nonNegativeInt,
});
const operatorRecordSchema = v.strictObject({
  kind: v.literal('operator'),
  id: text(1, 64),
  hash: hashSchema,
  name: v.optional(text(0, 200)),
  createdAtMs: nonNegativeInt,
  expiresAtMs: v.optional(nonNegativeInt),
});
const tokensFileSchema = v.strictObject({
  version: v.literal(1),
  tokens: v.array(v.variant('kind', [proxyRecordSchema, operatorRecordSchema])),
});

export type ProxyTokenRecord = v.InferOutput<typeof proxyRecordSchema>;
export type OperatorTokenRecord = v.InferOutput<typeof operatorRecordSchema>;
export type TokenRecord = ProxyTokenRecord | OperatorTokenRecord;
export type TokensFile = v.InferOutput<typeof tokensFileSchema>;
/** What listings show: never the hash. */
export type TokenInfo = Omit<ProxyTokenRecord, 'hash'> | Omit<OperatorTokenRecord, 'hash'>;

export function tokensPath(vaultDir: string): string {
  return join(vaultDir, 'tokens.json');
}

export function hashToken(token: string): string {
  // One-shot hash (no Hash object per call): this runs on the main thread for every proxied request.
  return hash('sha256', token, 'hex');
}

function newToken(prefix: string): string {
  return prefix + randomBytes(TOKEN_BYTES).toString('base64url');
}

function newId(): string {
  return `tok_${randomBytes(8).toString('hex')}`;
}

export function toInfo(record: TokenRecord): TokenInfo {
  const { hash: _hash, ...rest } = record;
  return rest;
}

/** tokens.json, its policy seal verified when the vault is sealed (stores/vault/policy-seal.ts). */
export async function readTokensFile(path: string): Promise<TokensFile> {
  const raw = await readPolicyFile(path, 'tokens');
  if (raw === undefined) return { version: 1, tokens: [] };
  const parsed = validate(tokensFileSchema, raw);
  if (!parsed.ok) {
    const where = parsed.issues[0]?.path.join('.') || '(root)';
    throw new AivaultError('storage_corrupt', `${path} is corrupt or was edited by hand (at ${where})`, {
      file: path,
    });
  }
  return parsed.value;
}

/** Read-modify-write under the vault lock; expired proxy tokens are pruned on every write. */
async function mutateTokens<T>(vaultDir: string, fn: (doc: TokensFile) => T, nowMs: number): Promise<T> {
  const path = tokensPath(vaultDir);
  return withVaultLock(vaultDir, async () => {
    const doc = await readTokensFile(path);
    doc.tokens = doc.tokens.filter((t) => t.expiresAtMs === undefined || t.expiresAtMs > nowMs);
    const out = fn(doc);
    await writePolicyFile(path, 'tokens', doc);
    return out;
  });
}

export interface MintProxyInput {
  /** Capability ids or `provider/*` wildcards (at least one). */
  readonly capabilities: readonly string[];
  readonly credential?: string;
  readonly workspaceId?: string;
  readonly groupId?: string;
  readonly ttlMs?: number;
  readonly label?: string;
  /** HTTPS proxy blind-tunnel hosts (`host` for port 443, else `host:port`). */
  readonly tunnelHosts?: readonly string[];
}

/** Validate a mint request (pure). Throws `usage`/`invalid_request` style AivaultErrors. */
export function checkMintInput(input: MintProxyInput, code: 'usage' | 'invalid_request' = 'usage'): void {
  if (!Array.isArray(input.capabilities) || input.capabilities.length === 0) {
    throw new AivaultError(code, 'a proxy token needs at least one capability (id or provider/*)');
  }
  for (const c of input.capabilities) {
    const base = typeof c === 'string' && c.endsWith('/*') ? c.slice(0, -2) : c;
    if (typeof base !== 'string' || !SCOPE_ENTRY.test(base) || (base !== c && base.includes('/'))) {
      throw new AivaultError(code, `capability scope ${JSON.stringify(c)} is not an id or provider/*`);
    }
  }
  for (const [name, v] of [
    ['credential', input.credential],
    ['workspaceId', input.workspaceId],
    ['groupId', input.groupId],
  ] as const) {
    if (v !== undefined && (typeof v !== 'string' || !CONTEXT_ID.test(v))) {
      throw new AivaultError(code, `${name} must be an id`);
    }
  }
  if (input.groupId !== undefined && input.workspaceId === undefined) {
    throw new AivaultError(code, 'a group context needs a workspace id');
  }
  for (const h of input.tunnelHosts ?? []) {
    if (typeof h !== 'string' || !TUNNEL_HOST.test(h)) {
      throw new AivaultError(code, `tunnel host ${JSON.stringify(h)} is not a host name (host or host:port)`);
    }
  }
  const ttl = input.ttlMs ?? DEFAULT_PROXY_TTL_MS;
  if (!Number.isInteger(ttl) || ttl < 1000 || ttl > MAX_PROXY_TTL_MS) {
    throw new AivaultError(code, 'ttl must be between 1 second and 7 days');
  }
}

/** Mint a proxy token. Returns the token (shown once; only its hash is stored) and its record. */
export async function mintProxyToken(
  vaultDir: string,
  input: MintProxyInput,
  nowMs = Date.now(),
): Promise<{ token: string; info: TokenInfo & { kind: 'proxy' } }> {
  checkMintInput(input);
  const token = newToken(PROXY_TOKEN_PREFIX);
  const record: ProxyTokenRecord = {
    kind: 'proxy',
    id: newId(),
    hash: hashToken(token),
    capabilities: [...new Set(input.capabilities)],
    ...(input.credential !== undefined ? { credential: input.credential } : {}),
    ...(input.workspaceId !== undefined ? { workspaceId: input.workspaceId } : {}),
    ...(input.groupId !== undefined ? { groupId: input.groupId } : {}),
    ...(input.label !== undefined ? { label: input.label.slice(0, 200) } : {}),
    ...(input.tunnelHosts?.length
      ? { tunnelHosts: [...new Set(input.tunnelHosts.map((h) => h.replace(/:443$/, '')))] }
      : {}),
    createdAtMs: nowMs,
    expiresAtMs: nowMs + (input.ttlMs ?? DEFAULT_PROXY_TTL_MS),
  };
  await mutateTokens(vaultDir, (doc) => doc.tokens.push(record), nowMs);
  const { hash: _h, ...info } = record;
  return { token, info };
}

/** Create an operator token (admin HTTP routes). No expiry unless `ttlMs` is given. */
export async function createOperatorToken(
  vaultDir: string,
  input: { name?: string; ttlMs?: number },
  nowMs = Date.now(),
): Promise<{ token: string; info: TokenInfo & { kind: 'operator' } }> {
  if (input.ttlMs !== undefined && (!Number.isInteger(input.ttlMs) || input.ttlMs < 1000)) {
    throw new AivaultError('usage', 'ttl must be at least 1 second');
  }
  const token = newToken(OPERATOR_TOKEN_PREFIX);
  const record: OperatorTokenRecord = {
    kind: 'operator',
    id: newId(),
    hash: hashToken(token),
    ...(input.name !== undefined ? { name: input.name.slice(0, 200) } : {}),
    createdAtMs: nowMs,
    ...(input.ttlMs !== undefined ? { expiresAtMs: nowMs + input.ttlMs } : {}),
  };
  await mutateTokens(vaultDir, (doc) => doc.tokens.push(record), nowMs);
  const { hash: _h, ...info } = record;
  return { token, info };
}

export async function listTokens(vaultDir: string, nowMs = Date.now()): Promise<TokenInfo[]> {
  const doc = await readTokensFile(tokensPath(vaultDir));
  return doc.tokens
    .filter((t) => t.expiresAtMs === undefined || t.expiresAtMs > nowMs)
    .map(toInfo)
    .sort((a, b) => a.createdAtMs - b.createdAtMs);
}

export async function revokeToken(vaultDir: string, id: string, nowMs = Date.now()): Promise<void> {
  await mutateTokens(
    vaultDir,
    (doc) => {
      const before = doc.tokens.length;
      doc.tokens = doc.tokens.filter((t) => t.id !== id);
      if (doc.tokens.length === before) throw new AivaultError('not_found', `token ${id} does not exist`);
    },
    nowMs,
  );
}

/**
 * tokens.json's records by hash (verifying a presented token) or by id (an open tunnel's token still
 * valid?), built once per parsed document (the daemon keeps one document per vault generation). A Map lookup instead of a scan with two Buffer allocations per record per request: the
 * check ran on the main thread for every proxied call and grew with every minted token. The key is the
 * SHA-256 of the presented token, so lookup timing can tell an attacker only about hashes, never about a
 * token; the comparison is still exact on the full 256-bit hash.
 */
type TokenIndex = WeakMap<TokensFile, ReadonlyMap<string, TokenRecord>>;
const indexes: Record<'hash' | 'id', TokenIndex> = { hash: new WeakMap(), id: new WeakMap() };

/** The record whose `key` is `value` (the first record wins a duplicate). */
function findBy(key: 'hash' | 'id', doc: TokensFile, value: string): TokenRecord | undefined {
  let index = indexes[key].get(doc);
  if (!index) {
    const m = new Map<string, TokenRecord>();
    for (const r of doc.tokens) if (!m.has(r[key])) m.set(r[key], r);
    indexes[key].set(doc, m);
    index = m;
  }
  return index.get(value);
}

/**
 * Verifies presented tokens against tokens.json. In the daemon (`generation` given) the parsed file is
 * cached per vault generation: token mint/revoke through the daemon bump it before they answer, the vault
 * watcher bumps it for writes made elsewhere, so a warm check makes no syscall. Without a generation the
 * file is re-read whenever its stat changes. Used on the daemon's main thread.
 */
export class TokenVerifier {
  private key: string | undefined;
  private doc: TokensFile = { version: 1, tokens: [] };
  private readonly path: string;
  private readonly cached: (() => Promise<TokensFile>) | undefined;

  constructor(
    vaultDir: string,
    private readonly now: () => number = Date.now,
    generation?: Generation,
  ) {
    this.path = tokensPath(vaultDir);
    if (generation) this.cached = perGeneration(generation, 'tokens', () => readTokensFile(this.path));
  }

  private async load(): Promise<TokensFile> {
    if (this.cached) return this.cached();
    let key: string;
    try {
      const st = await fsp.stat(this.path);
      key = `${st.mtimeMs}:${st.ctimeMs}:${st.size}:${st.ino}`;
    } catch {
      key = 'missing';
    }
    if (key !== this.key) {
      this.doc = await readTokensFile(this.path);
      this.key = key;
    }
    return this.doc;
  }

  /** A proxy token for a proxy route → its record, else `token_invalid`. */
  async verifyProxy(presented: string | undefined): Promise<ProxyTokenRecord> {
    if (!presented) throw new AivaultError('token_invalid', 'a proxy token is required (Bearer avp_…)');
    if (!presented.startsWith(PROXY_TOKEN_PREFIX) || presented.length > 256) {
      throw new AivaultError('token_invalid', 'not a proxy token');
    }
    const found = findBy('hash', await this.load(), hashToken(presented));
    const record = found?.kind === 'proxy' ? found : undefined;
    if (!record) throw new AivaultError('token_invalid', 'unknown proxy token');
    if (record.expiresAtMs <= this.now()) throw new AivaultError('token_invalid', 'proxy token expired');
    return record;
  }

  /**
   * Ids of the proxy tokens that are currently valid (issued, not revoked, not expired). Long-lived
   * relays (`/aivault/ws`) re-check their token against this so expiry and revocation end them too.
   */
  async activeProxyTokenIds(): Promise<ReadonlySet<string>> {
    const doc = await this.load();
    const now = this.now();
    const ids = new Set<string>();
    for (const t of doc.tokens) if (t.kind === 'proxy' && t.expiresAtMs > now) ids.add(t.id);
    return ids;
  }

  /**
   * Whether the proxy token `id` is still valid (issued, not revoked, not expired): the per-request check of
   * an open HTTPS-proxy tunnel. A Map lookup per parsed document, not a Set of every token per request.
   */
  async isActiveProxyToken(id: string): Promise<boolean> {
    const record = findBy('id', await this.load(), id);
    return record?.kind === 'proxy' && record.expiresAtMs > this.now();
  }

  /** An operator token for an admin route → its record, else `operator_auth_required`. */
  async verifyOperator(presented: string | undefined): Promise<OperatorTokenRecord> {
    if (!presented || !presented.startsWith(OPERATOR_TOKEN_PREFIX) || presented.length > 256) {
      throw new AivaultError(
        'operator_auth_required',
        'this route needs an operator token (Authorization: Bearer avo_…; create one with `aivault token operator create`)',
      );
    }
    const found = findBy('hash', await this.load(), hashToken(presented));
    const record = found?.kind === 'operator' ? found : undefined;
    if (!record || (record.expiresAtMs !== undefined && record.expiresAtMs <= this.now())) {
      throw new AivaultError('operator_auth_required', 'unknown or expired operator token');
    }
    return record;
  }
}

/** Parse a TTL: `900` (seconds), `30s`, `15m`, `2h`, `1d`. */
export function parseTtl(text: string): number {
  const m = /^(\d+)\s*(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw new AivaultError('usage', `--ttl ${JSON.stringify(text)}: use e.g. 900, 30s, 15m, 2h, 1d`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[unit] as number;
  return n * factor;
}

/**
 * Operator HTTP API (SPEC §8) on the loopback listener. Every route needs an operator token
 * (`Authorization: Bearer avo_…`, created with `aivault token operator create`); a proxy token gets
 * `operator_auth_required`. Every call — allowed or refused — is audited (`kind: http.operator`).
 *
 *   GET|POST          /aivault/credentials           GET|PATCH|DELETE /aivault/credentials/{id}
 *   GET|POST          /aivault/capabilities          GET|PATCH|DELETE /aivault/capabilities/{id}
 *   GET               /aivault/secrets               (metadata only; values are never returned)
 *   POST              /aivault/tokens/proxy          GET /aivault/tokens   DELETE /aivault/tokens/{id}
 *   GET               /aivault/approvals[?wait=ids]  POST /aivault/approvals/{id}/approve|deny
 *
 * Mutations go through the catalog/token stores (vault lock + atomic writes; the catalog is the only
 * writer of broker.json, PATCH merges included). Reads metadata only:
 * this module never decrypts anything.
 */
import type { Config } from '../core/config/env.js';
import { AivaultError, ERRORS, toWire } from '../core/errors.js';
import type { AuditInput } from '../stores/audit/audit-log.js';
import type { BrokerSnapshot } from '../core/broker/types.js';
import { registry } from '../core/registry/index.js';
import {
  catalogPaths,
  createCapability,
  createCredential,
  deleteCapability,
  deleteCredential,
  patchCapabilityAllow,
  patchCredential,
  setPolicy,
  type CreateCredentialInput,
} from '../stores/catalog/index.js';
import type { VaultPaths } from '../stores/vault/paths.js';
import type { ApprovalStore } from './approvals.js';
import { decideApproval, listApprovals } from './approval-ops.js';
import { tokenCaller } from '../core/broker/approval-caller.js';
import {
  listTokens,
  mintProxyToken,
  revokeToken,
  checkMintInput,
  type TokenVerifier,
} from '../stores/tokens/tokens.js';

export interface AdminContext {
  readonly config: Config;
  readonly paths: VaultPaths;
  readonly verifier: TokenVerifier;
  readonly snapshot: () => Promise<BrokerSnapshot>;
  readonly audit: (event: AuditInput) => void;
  /**
   * Called after every write route (also a failed one: it may have written part), before the reply: the
   * daemon bumps the vault generation, so the next call through any listener sees the change.
   */
  readonly afterWrite?: () => void;
  /** Calls waiting for the operator (absent: the approvals routes are 404). */
  readonly approvals?: ApprovalStore;
}

export interface AdminRequest {
  readonly method: string;
  readonly url: string;
  /** The query string without `?` (only `GET /aivault/approvals?wait=` reads one). */
  readonly query?: string;
  readonly token: string | undefined;
  readonly body: Buffer | undefined;
  readonly peer: string;
}

export interface AdminResponse {
  readonly status: number;
  readonly body: unknown;
}

function parseBody(body: Buffer | undefined): Record<string, unknown> {
  if (!body || body.byteLength === 0) return {};
  let v: unknown;
  try {
    v = JSON.parse(body.toString('utf8'));
  } catch {
    throw new AivaultError('invalid_request', 'the request body must be JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new AivaultError('invalid_request', 'the request body must be a JSON object');
  }
  return v as Record<string, unknown>;
}

function only(body: Record<string, unknown>, allowed: readonly string[]): void {
  for (const k of Object.keys(body)) {
    if (!allowed.includes(k)) throw new AivaultError('invalid_request', `unknown field ${k}`);
  }
}

const str = (v: unknown, name: string): string | undefined => {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new AivaultError('invalid_request', `${name} must be a string`);
  return v;
};
const strList = (v: unknown, name: string): string[] | undefined => {
  if (v === undefined) return undefined;
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
    throw new AivaultError('invalid_request', `${name} must be a list of strings`);
  }
  return v as string[];
};
const strMap = (v: unknown, name: string): Record<string, string> | undefined => {
  if (v === undefined) return undefined;
  if (
    typeof v !== 'object' ||
    v === null ||
    Array.isArray(v) ||
    !Object.values(v).every((x) => typeof x === 'string')
  ) {
    throw new AivaultError('invalid_request', `${name} must be an object of strings`);
  }
  return v as Record<string, string>;
};

function credentialInput(body: Record<string, unknown>, id?: string): CreateCredentialInput {
  const secretRef = str(body.secretRef, 'secretRef');
  const secretRefs = strMap(body.secretRefs, 'secretRefs');
  const hosts = strList(body.hosts, 'hosts');
  const params = strMap(body.params, 'params');
  const workspaceId = str(body.workspaceId, 'workspaceId');
  const groupId = str(body.groupId, 'groupId');
  return {
    id: id ?? str(body.id, 'id') ?? '',
    provider: str(body.provider, 'provider') ?? '',
    ...(secretRef !== undefined ? { secretRef } : {}),
    ...(secretRefs !== undefined ? { secretRefs } : {}),
    ...(body.auth !== undefined ? { auth: body.auth as CreateCredentialInput['auth'] } : {}),
    ...(hosts !== undefined ? { hosts } : {}),
    ...(params !== undefined ? { params } : {}),
    ...(workspaceId !== undefined ? { workspaceId } : {}),
    ...(groupId !== undefined ? { groupId } : {}),
  };
}

const POLICY_FIELDS = [
  'rateLimitPerMinute',
  'maxRequestBodyBytes',
  'maxResponseBodyBytes',
  'responseBlocklist',
  'approval',
] as const;

/** The request's path without trailing slashes, as the routes match it. */
function routePath(req: AdminRequest): string {
  return req.url.replace(/\/+$/, '');
}

async function route(ctx: AdminContext, req: AdminRequest, actor: string): Promise<AdminResponse> {
  const cat = catalogPaths(ctx.paths.root);
  const url = routePath(req);
  if (ctx.approvals && (url === '/aivault/approvals' || url.startsWith('/aivault/approvals/'))) {
    return approvalsRoute(ctx.approvals, req.method, url, req.query ?? '', actor);
  }
  const m = /^\/aivault\/(credentials|capabilities|secrets|tokens)(?:\/(.+))?$/.exec(url);
  if (!m) throw new AivaultError('not_found', `no route ${req.method} ${req.url}`);
  const [, collection, rawId] = m;
  let id: string | undefined;
  try {
    id = rawId !== undefined ? decodeURIComponent(rawId) : undefined;
  } catch {
    throw new AivaultError('invalid_request', 'malformed id in the path');
  }
  const method = req.method;
  const snap = async (): Promise<BrokerSnapshot> => ctx.snapshot();

  if (collection === 'credentials') {
    if (id === undefined && method === 'GET') {
      return {
        status: 200,
        body: [...(await snap()).credentials.values()].sort((a, b) => a.id.localeCompare(b.id)),
      };
    }
    if (id === undefined && method === 'POST') {
      const body = parseBody(req.body);
      only(body, [
        'id',
        'provider',
        'secretRef',
        'secretRefs',
        'auth',
        'hosts',
        'params',
        'workspaceId',
        'groupId',
      ]);
      const created = await createCredential(cat, registry, credentialInput(body), {
        secrets: [...(await snap()).secrets.values()],
      });
      return { status: 201, body: created };
    }
    if (id !== undefined && method === 'GET') {
      const c = (await snap()).credentials.get(id);
      if (!c) throw new AivaultError('credential_not_found', `credential ${id} does not exist`);
      return { status: 200, body: c };
    }
    if (id !== undefined && method === 'PATCH') {
      const body = parseBody(req.body);
      only(body, ['secretRef', 'secretRefs', 'auth', 'hosts', 'params']);
      const { id: _id, provider: _provider, ...patch } = credentialInput(body, id);
      await patchCredential(cat, registry, id, patch, { secrets: [...(await snap()).secrets.values()] });
      const c = (await snap()).credentials.get(id);
      return { status: 200, body: c ?? { id } };
    }
    if (id !== undefined && method === 'DELETE') {
      const removed = await deleteCredential(cat, id);
      ctx.approvals?.forgetAll(); // as the CLI's credential.remove (approval-staleness.ts)
      return { status: 200, body: { id, ...removed } };
    }
  }

  if (collection === 'capabilities') {
    if (id === undefined && method === 'GET') {
      const s = await snap();
      return {
        status: 200,
        body: [...s.capabilities.values()]
          .sort((a, b) => a.id.localeCompare(b.id))
          .map((c) => ({ ...c, policy: s.policies.get(c.id) ?? null })),
      };
    }
    if (id === undefined && method === 'POST') {
      const body = parseBody(req.body);
      only(body, ['id', 'credentialId', 'credential', 'methods', 'pathPrefixes', 'host']);
      const host = str(body.host, 'host');
      const created = await createCapability(
        cat,
        registry,
        {
          id: str(body.id, 'id') ?? '',
          credentialId: str(body.credentialId ?? body.credential, 'credentialId') ?? '',
          methods: strList(body.methods, 'methods') ?? [],
          pathPrefixes: strList(body.pathPrefixes, 'pathPrefixes') ?? [],
          ...(host !== undefined ? { host } : {}),
        },
        { secrets: [...(await snap()).secrets.values()] },
      );
      return { status: 201, body: created };
    }
    if (id !== undefined && method === 'GET') {
      const s = await snap();
      const c = s.capabilities.get(id) ?? undefined;
      if (!c) throw new AivaultError('capability_not_found', `capability ${id} does not exist`);
      return { status: 200, body: { ...c, policy: s.policies.get(id) ?? null } };
    }
    if (id !== undefined && method === 'PATCH') {
      const body = parseBody(req.body);
      only(body, ['methods', 'pathPrefixes', ...POLICY_FIELDS]);
      const methods = strList(body.methods, 'methods');
      const prefixes = strList(body.pathPrefixes, 'pathPrefixes');
      await patchCapabilityAllow(cat, registry, id, {
        ...(methods ? { methods } : {}),
        ...(prefixes ? { pathPrefixes: prefixes } : {}),
      });
      const policyPatch = Object.fromEntries(POLICY_FIELDS.filter((k) => k in body).map((k) => [k, body[k]]));
      if (Object.keys(policyPatch).length > 0) {
        await setPolicy(cat, registry, { capabilityId: id, ...policyPatch });
      }
      // A policy set (or a changed allow-list) ends the capability's `once` approvals, as the CLI's
      // policy set does (approval-staleness.ts).
      ctx.approvals?.forgetCapability(id);
      const s = await snap();
      const c = s.capabilities.get(id);
      if (!c) throw new AivaultError('capability_not_found', `capability ${id} does not exist`);
      return { status: 200, body: { ...c, policy: s.policies.get(id) ?? null } };
    }
    if (id !== undefined && method === 'DELETE') {
      await deleteCapability(cat, registry, id);
      ctx.approvals?.forgetCapability(id);
      return { status: 200, body: { id, deleted: true } };
    }
  }

  if (collection === 'secrets' && id === undefined && method === 'GET') {
    const s = await snap();
    return { status: 200, body: [...s.secrets.values()].sort((a, b) => a.name.localeCompare(b.name)) };
  }

  if (collection === 'tokens') {
    if (id === 'proxy' && method === 'POST') {
      const body = parseBody(req.body);
      only(body, ['capabilities', 'credential', 'ttlMs', 'context', 'label']);
      const context = body.context === undefined ? {} : (body.context as Record<string, unknown>);
      if (typeof context !== 'object' || context === null || Array.isArray(context)) {
        throw new AivaultError('invalid_request', 'context must be {workspaceId?, groupId?}');
      }
      only(context, ['workspaceId', 'groupId']);
      if (body.ttlMs !== undefined && typeof body.ttlMs !== 'number') {
        throw new AivaultError('invalid_request', 'ttlMs must be a number');
      }
      const input = {
        capabilities: strList(body.capabilities, 'capabilities') ?? [],
        ...(body.credential !== undefined
          ? { credential: str(body.credential, 'credential') as string }
          : {}),
        ...(context.workspaceId !== undefined
          ? { workspaceId: str(context.workspaceId, 'workspaceId') as string }
          : {}),
        ...(context.groupId !== undefined ? { groupId: str(context.groupId, 'groupId') as string } : {}),
        ...(typeof body.ttlMs === 'number' ? { ttlMs: body.ttlMs } : {}),
        ...(body.label !== undefined ? { label: str(body.label, 'label') as string } : {}),
      };
      checkMintInput(input, 'invalid_request');
      const minted = await mintProxyToken(ctx.config.vaultDir, input);
      return { status: 201, body: { token: minted.token, ...minted.info, mintedBy: actor } };
    }
    if (id === undefined && method === 'GET') {
      return { status: 200, body: await listTokens(ctx.config.vaultDir) };
    }
    if (id !== undefined && id !== 'proxy' && method === 'DELETE') {
      await revokeToken(ctx.config.vaultDir, id);
      ctx.approvals?.forgetCaller(tokenCaller(id));
      return { status: 200, body: { id, revoked: true } };
    }
  }
  throw new AivaultError('not_found', `no route ${method} ${req.url}`);
}

/** Ids an operator may name in one `wait` (an approval id is `apr_` + 20 hex; any short word is accepted). */
const MAX_WAIT_IDS = 1000;
const WAIT_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * `wait` of `GET /aivault/approvals?wait=id1,id2`: the ids the asker already has (empty: none). Undefined
 * without the parameter (answered at once).
 */
function waitIds(query: string): string[] | undefined {
  const params = new URLSearchParams(query);
  const raw = params.get('wait');
  if (raw === null) return undefined;
  const ids = raw.split(',').filter(Boolean);
  if (ids.length > MAX_WAIT_IDS || !ids.every((id) => WAIT_ID_RE.test(id))) {
    throw new AivaultError(
      'invalid_request',
      `wait takes up to ${MAX_WAIT_IDS} comma-separated approval ids`,
    );
  }
  return ids;
}

/** GET /aivault/approvals, POST /aivault/approvals/{id}/approve|deny (main thread: the store is here). */
async function approvalsRoute(
  store: ApprovalStore,
  method: string,
  url: string,
  query: string,
  actor: string,
): Promise<AdminResponse> {
  if (url === '/aivault/approvals' && method === 'GET') {
    // With `wait`, a long poll: held until the pending set differs from the ids given (or LIST_WAIT_MS), so
    // an operator UI asks once per change instead of polling, and writes one audit line per answer.
    return { status: 200, body: await listApprovals(store, waitIds(query)) };
  }
  const m = /^\/aivault\/approvals\/([^/]+)\/(approve|deny)$/.exec(url);
  if (m && method === 'POST') {
    let id: string;
    try {
      id = decodeURIComponent(m[1] ?? '');
    } catch {
      throw new AivaultError('invalid_request', 'malformed id in the path');
    }
    const outcome = m[2] === 'approve' ? 'approved' : 'denied';
    return { status: 200, body: decideApproval(store, id, outcome, `http:${actor}`) };
  }
  throw new AivaultError('not_found', `no route ${method} ${url}`);
}

/** `GET /aivault/approvals?wait=…`: held by the daemon until the pending set changes. */
function isLongPoll(req: AdminRequest): boolean {
  return (
    req.method === 'GET' &&
    routePath(req) === '/aivault/approvals' &&
    new URLSearchParams(req.query ?? '').has('wait')
  );
}

/** Authenticate, dispatch, audit. Throws AivaultError for the caller to render. */
export async function handleAdmin(ctx: AdminContext, req: AdminRequest): Promise<AdminResponse> {
  const started = Date.now();
  const base: AuditInput = {
    kind: 'http.operator',
    method: req.method,
    path: req.url.slice(0, 300),
    ...(req.peer ? { clientIp: req.peer } : {}),
  };
  let actor: string;
  try {
    actor = (await ctx.verifier.verifyOperator(req.token)).id;
  } catch (err) {
    const wire = toWire(err);
    ctx.audit({
      ...base,
      status: ERRORS[wire.error].http,
      errorCode: wire.error,
      durationMs: Date.now() - started,
    });
    throw err;
  }
  try {
    // An approval decision changes no vault file: no generation bump for it.
    const out = await (req.method === 'GET' || req.url.startsWith('/aivault/approvals')
      ? route(ctx, req, actor)
      : route(ctx, req, actor).finally(() => ctx.afterWrite?.()));
    // A long poll is answered up to LIST_WAIT_MS after its token was checked: a token revoked or expired
    // meanwhile gets no answer (the pending calls' metadata), just as its next request would get none.
    if (isLongPoll(req)) await ctx.verifier.verifyOperator(req.token);
    ctx.audit({ ...base, actor, status: out.status, durationMs: Date.now() - started });
    return out;
  } catch (err) {
    const wire = toWire(err);
    ctx.audit({
      ...base,
      actor,
      status: ERRORS[wire.error].http,
      errorCode: wire.error,
      durationMs: Date.now() - started,
    });
    throw err;
  }
}

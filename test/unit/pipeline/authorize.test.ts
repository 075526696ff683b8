// The one authorization path (src/request-worker/pipeline/authorize.ts) that the HTTP pipeline and the WebSocket relay
// share: plan + rate limit (fail closed), secret slots (+ OAuth2 freshness), auth injection into the
// final path, query, headers and client certificate. Real rate limiter (SharedArrayBuffer) and real auth
// strategies; the catalog/plan step is a stub returning a fixed Plan.
import { describe, expect, it } from 'vitest';
import { AivaultError, fail, ok, type Result } from '../../../src/core/errors.js';
import type { Plan } from '../../../src/core/broker/types.js';
import { createAuth, SecretValues } from '../../../src/request-worker/auth/index.js';
import {
  admit,
  prepareUpstreamRequest,
  secretSlots,
  type AuditDraft,
} from '../../../src/request-worker/pipeline/authorize.js';
import { createRateLimitBuffer, RateLimiter } from '../../../src/core/threads/rate-limit.js';
import type { PipelineDeps } from '../../../src/request-worker/pipeline/types.js';
import { testPlan as basePlan } from './fixtures/plan.js';
import { approvalScope } from '../../../src/core/broker/approval-caller.js';

function testPlan(over: Partial<Plan> = {}): Plan {
  return basePlan({ query: 'a=1', headers: [['accept', 'application/json']], ...over });
}

const envelope = { capability: 'acme/chat', request: { method: 'GET', path: '/v1/chat' } } as const;

function planDeps(
  plan: Plan | AivaultError,
  rateLimiter?: RateLimiter,
): Pick<PipelineDeps, 'plan' | 'rateLimiter'> {
  return {
    plan: async (): Promise<Result<Plan>> =>
      plan instanceof AivaultError ? { ok: false, error: plan } : ok(plan),
    ...(rateLimiter ? { rateLimiter } : {}),
  };
}

const applyAuth: PipelineDeps['applyAuth'] = async (plan, input, bySlot) => {
  const apply = createAuth(plan.auth, plan.credentialParams);
  if (!apply.ok) return apply;
  return apply.value(input, SecretValues.from(bySlot));
};

function secretsOf(values: Record<string, string>): PipelineDeps['secrets'] {
  return {
    devOverrides: async () => undefined,
    decrypt: async (ids) => new Map(ids.filter((id) => id in values).map((id) => [id, values[id]!])),
  };
}

describe('admit: operator approval (policy `approval`)', () => {
  const plan = testPlan({
    policy: { approval: 'once', responseBlocklist: [], bufferResponse: false },
    body: { kind: 'bytes', data: new Uint8Array(12) },
  });

  it('asks with what will be sent (never a secret) and admits an approved call', async () => {
    const asked: unknown[] = [];
    const out = await admit(
      planDeps(plan),
      envelope,
      { token: { id: 'tok_1', capabilities: ['acme/*'] } },
      undefined,
      { kind: 'invoke' },
      async (req) => {
        asked.push(req);
        return 'approved';
      },
    );
    expect(out).toBe(plan);
    expect(asked).toEqual([
      {
        capability: 'acme/chat',
        method: plan.method,
        host: plan.host,
        path: plan.path,
        bodyBytes: 12,
        callerTokenId: 'tok_1',
        caller: 'token:tok_1',
        scope: approvalScope(plan.policy, plan.credentialId, plan.host),
        mode: 'once',
      },
    ]);
  });

  it('a unix-socket call is remembered for its connection; a call with no caller for nobody', async () => {
    const asked: { caller: string }[] = [];
    const ask = async (req: { caller: string }): Promise<'approved'> => {
      asked.push(req);
      return 'approved';
    };
    await admit(planDeps(plan), envelope, { socketConnection: '7' }, undefined, { kind: 'invoke' }, ask);
    await admit(planDeps(plan), envelope, {}, undefined, { kind: 'invoke' }, ask);
    expect(asked.map((r) => r.caller)).toEqual(['socket:7', '']);
  });

  it('the scope changes with the policy, the credential and the host', () => {
    const base = approvalScope(plan.policy, 'cred', 'h.test');
    expect(approvalScope({ ...plan.policy }, 'cred', 'h.test')).toBe(base);
    expect(approvalScope({ ...plan.policy, approval: 'always' }, 'cred', 'h.test')).not.toBe(base);
    expect(approvalScope({ ...plan.policy, rateLimitPerMinute: 5 }, 'cred', 'h.test')).not.toBe(base);
    expect(approvalScope(plan.policy, 'other', 'h.test')).not.toBe(base);
    expect(approvalScope(plan.policy, 'cred', 'h.test:8443')).not.toBe(base);
  });

  it('a denial or a timeout is approval_denied; no way to ask is approval_denied too (fail closed)', async () => {
    for (const outcome of ['denied', 'timeout'] as const) {
      await expect(
        admit(planDeps(plan), envelope, {}, undefined, { kind: 'invoke' }, async () => outcome),
      ).rejects.toMatchObject({ code: 'approval_denied', details: { outcome } });
    }
    await expect(admit(planDeps(plan), envelope, {}, undefined, { kind: 'invoke' })).rejects.toMatchObject({
      code: 'approval_denied',
    });
  });

  it('a plan without the policy never asks', async () => {
    const ask = async (): Promise<'approved'> => {
      throw new Error('must not ask');
    };
    await expect(
      admit(planDeps(testPlan()), envelope, {}, undefined, { kind: 'invoke' }, ask),
    ).resolves.toBeDefined();
  });
});

describe('admit', () => {
  it('fails closed when the plan has a rate limit and no limiter is wired', async () => {
    const audit: AuditDraft = { kind: 'invoke' };
    const plan = testPlan({
      policy: { rateLimitPerMinute: 5, responseBlocklist: [], bufferResponse: false },
    });
    await expect(admit(planDeps(plan), envelope, {}, undefined, audit)).rejects.toMatchObject({
      code: 'internal',
    });
    // The refused call is still audited with what it asked for.
    expect(audit).toMatchObject({ capability: 'acme/chat', credential: 'acme', host: 'api.acme.test' });
  });

  it('admits up to the limit, then refuses with rate_limited and a retry hint', async () => {
    const limiter = new RateLimiter(createRateLimitBuffer(4));
    const plan = testPlan({
      policy: { rateLimitPerMinute: 2, responseBlocklist: [], bufferResponse: false },
    });
    const deps = planDeps(plan, limiter);
    await admit(deps, envelope, {}, undefined, { kind: 'invoke' });
    await admit(deps, envelope, {}, undefined, { kind: 'invoke' });
    const third = admit(deps, envelope, {}, undefined, { kind: 'invoke' });
    await expect(third).rejects.toMatchObject({ code: 'rate_limited' });
    const e = (await third.catch((x: unknown) => x)) as AivaultError;
    expect(e.details?.['retryAfterMs']).toBeGreaterThan(0);
  });

  it('passes a plan without a rate limit through without a limiter, and a plan error as is', async () => {
    const plan = testPlan();
    await expect(admit(planDeps(plan), envelope, {}, undefined, { kind: 'invoke' })).resolves.toBe(plan);
    const denied = new AivaultError('policy_violation', 'path not allowed');
    await expect(admit(planDeps(denied), envelope, {}, undefined, { kind: 'invoke' })).rejects.toBe(denied);
  });
});

describe('secretSlots', () => {
  it('maps slots to values and records them for error scrubbing', async () => {
    const seen: Readonly<Record<string, string>>[] = [];
    const slots = await secretSlots(
      { secrets: secretsOf({ sec_1: 'k-123456' }) },
      testPlan(),
      undefined,
      seen,
    );
    expect(slots).toEqual({ secret: 'k-123456' });
    expect(seen).toEqual([{ secret: 'k-123456' }]);
  });

  it('a missing secret is vault_unavailable naming it and the credential', async () => {
    const p = secretSlots({ secrets: secretsOf({}) }, testPlan(), undefined, []);
    await expect(p).rejects.toMatchObject({ code: 'vault_unavailable' });
    await expect(p).rejects.toThrow(/sec_1.*acme/);
  });

  it('an oauth2 credential needs the refresher, and its refreshed slots are recorded too', async () => {
    const plan = testPlan({
      auth: { oauth2: { grant_type: 'refresh_token', token_endpoint: 'https://auth.acme.test/token' } },
    });
    const secrets = secretsOf({ sec_1: '{"refreshToken":"r-1"}' });
    await expect(secretSlots({ secrets }, plan, undefined, [])).rejects.toMatchObject({
      code: 'auth_failed',
    });
    const seen: Readonly<Record<string, string>>[] = [];
    const fresh = { secret: '{"accessToken":"a-2","refreshToken":"r-1"}' };
    const slots = await secretSlots(
      { secrets, oauth2: { ensure: async () => fresh } },
      plan,
      undefined,
      seen,
    );
    expect(slots).toBe(fresh);
    expect(seen).toHaveLength(2);
  });
});

describe('prepareUpstreamRequest', () => {
  it('sets auth headers over caller headers of the same name and keeps the query', async () => {
    const plan = testPlan({
      headers: [
        ['accept', 'x'],
        ['authorization', 'caller'],
      ],
    });
    const req = await prepareUpstreamRequest(
      { applyAuth },
      plan,
      { secret: 'k-1' },
      {
        headers: plan.headers,
        body: new Uint8Array(0),
      },
    );
    expect(req.headers).toEqual([
      ['accept', 'x'],
      ['authorization', 'Bearer k-1'],
    ]);
    expect(req.pathAndQuery).toBe('/v1/chat?a=1');
    expect(req.authHeaders).toEqual([['authorization', 'Bearer k-1']]);
    expect(req.clientCert).toBeUndefined();
  });

  it('appends query auth and reports the URL secret; prefixes path auth', async () => {
    const q = await prepareUpstreamRequest(
      { applyAuth },
      testPlan({ auth: { query: { param_name: 'key' } } }),
      { secret: 'k/2' },
      { headers: [], body: new Uint8Array(0) },
    );
    expect(q.pathAndQuery).toBe('/v1/chat?a=1&key=k%2F2');
    expect(q.urlSecrets).toContain('k%2F2');
    const p = await prepareUpstreamRequest(
      { applyAuth },
      testPlan({ query: '', auth: { path: { prefix_template: '/bot{{secret}}' } } }),
      { secret: '123:abc' },
      { headers: [], body: new Uint8Array(0) },
    );
    expect(p.pathAndQuery).toBe('/bot123:abc/v1/chat');
  });

  it('hands the mTLS certificate, key AND CA to the transport', async () => {
    const tls = { cert: 'C', key: 'K', ca: 'CA' };
    const deps: Pick<PipelineDeps, 'applyAuth'> = {
      applyAuth: async () => ok({ setHeaders: [], appendQuery: [], tls, urlSecrets: [] }),
    };
    const req = await prepareUpstreamRequest(deps, testPlan(), {}, { headers: [], body: undefined });
    expect(req.clientCert).toEqual(tls);
  });

  it('throws the auth strategy failure', async () => {
    const deps: Pick<PipelineDeps, 'applyAuth'> = {
      applyAuth: async () => fail('auth_failed', 'bad secret'),
    };
    await expect(
      prepareUpstreamRequest(deps, testPlan(), {}, { headers: [], body: undefined }),
    ).rejects.toMatchObject({ code: 'auth_failed' });
  });
});

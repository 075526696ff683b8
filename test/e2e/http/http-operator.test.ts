/** Operator HTTP API: operator tokens only, CRUD for credentials and capabilities, token minting, audit. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditLog } from '../../../src/stores/audit/audit-log.js';
import { vaultPaths } from '../../../src/stores/vault/index.js';
import { startHttpFixture, type HttpFixture } from './http-fixture.js';

// Loosely typed JSON bodies: the assertions check their shape.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

let fx: HttpFixture;
let op: string;
beforeAll(async () => {
  fx = await startHttpFixture();
  op = await fx.operator();
}, 60_000);
afterAll(() => fx?.close());

function call(
  method: string,
  path: string,
  body?: unknown,
  token = op,
): Promise<{ status: number; json: Json }> {
  return fx.api<Json>(token, method, path, body);
}

describe('operator API', () => {
  it('without an operator token every route is operator_auth_required', async () => {
    for (const [m, p] of [
      ['GET', '/aivault/credentials'],
      ['POST', '/aivault/capabilities'],
      ['POST', '/aivault/tokens/proxy'],
      ['GET', '/aivault/secrets'],
    ] as const) {
      const res = await fetch(`${fx.baseUrl}${p}`, { method: m });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe('operator_auth_required');
    }
    const forged = await call('GET', '/aivault/credentials', undefined, `avo_${'A'.repeat(43)}`);
    expect(forged.json.error).toBe('operator_auth_required');
  });

  it('credentials: list, get, create, update, delete', async () => {
    const list = await call('GET', '/aivault/credentials');
    expect(list.status).toBe(200);
    expect(list.json.map((c: { id: string }) => c.id)).toEqual(
      expect.arrayContaining(['echo', 'openai', 'anthropic']),
    );
    const echo = await call('GET', '/aivault/credentials/echo');
    expect(echo.json.provider).toBe('echo');
    const secretRef = `vault:secret:${echo.json.secretRefs.secret}`;
    const created = await call('POST', '/aivault/credentials', {
      id: 'echo2',
      provider: 'echo2',
      secretRef,
      auth: { header: { header_name: 'x-token', value_template: '{{secret}}' } },
      hosts: ['upstream.test'],
    });
    expect(created.status).toBe(201);
    const updated = await call('PATCH', '/aivault/credentials/echo2', { hosts: ['other.test'] });
    expect(updated.status).toBe(200);
    expect(updated.json.hosts).toEqual(['other.test']);
    const dup = await call('POST', '/aivault/credentials', {
      id: 'echo2',
      provider: 'echo2',
      secretRef,
      auth: { header: { header_name: 'x', value_template: '{{secret}}' } },
      hosts: ['upstream.test'],
    });
    expect(dup.json.error).toBe('conflict');
    const del = await call('DELETE', '/aivault/credentials/echo2');
    expect(del.status).toBe(200);
    expect(await call('GET', '/aivault/credentials/echo2')).toMatchObject({
      status: 404,
      json: { error: 'credential_not_found' },
    });
    // A context-bound credential keeps its binding through a PATCH (dropping it would widen its reach).
    const bound = await call('POST', '/aivault/credentials', {
      id: 'echo3',
      provider: 'echo3',
      secretRef,
      auth: { header: { header_name: 'x-token', value_template: '{{secret}}' } },
      hosts: ['upstream.test'],
      workspaceId: 'w1',
    });
    expect(bound.status).toBe(201);
    expect(bound.json.workspaceId).toBe('w1');
    const patched = await call('PATCH', '/aivault/credentials/echo3', { hosts: ['other.test'] });
    expect(patched.json).toMatchObject({ hosts: ['other.test'], workspaceId: 'w1' });
    expect((await call('DELETE', '/aivault/credentials/echo3')).status).toBe(200);
  });

  it('capabilities: create, get, update (allow + policy), delete', async () => {
    const created = await call('POST', '/aivault/capabilities', {
      id: 'echo/ops',
      credentialId: 'echo',
      methods: ['GET'],
      pathPrefixes: ['/ops'],
    });
    expect(created.status).toBe(201);
    const patched = await call('PATCH', '/aivault/capabilities/echo%2Fops', {
      methods: ['GET', 'POST'],
      rateLimitPerMinute: 5,
    });
    expect(patched.status).toBe(200);
    expect(patched.json.allow.methods).toEqual(['GET', 'POST']);
    expect(patched.json.policy.rateLimitPerMinute).toBe(5);
    const got = await call('GET', '/aivault/capabilities/echo/ops');
    expect(got.json.id).toBe('echo/ops');
    const builtIn = await call('PATCH', '/aivault/capabilities/openai/models', { methods: ['POST'] });
    expect(builtIn.json.error).toBe('policy_violation');
    expect((await call('DELETE', '/aivault/capabilities/echo/ops')).status).toBe(200);
    expect((await call('GET', '/aivault/capabilities/echo/ops')).json.error).toBe('capability_not_found');
  });

  it('secrets: metadata only', async () => {
    const res = await call('GET', '/aivault/secrets');
    expect(res.status).toBe(200);
    expect(res.json.map((s: { name: string }) => s.name)).toEqual(expect.arrayContaining(['OPENAI_API_KEY']));
    expect(JSON.stringify(res.json)).not.toMatch(/sk-/);
  });

  it('mints a proxy token that works on the proxy route only', async () => {
    const minted = await call('POST', '/aivault/tokens/proxy', {
      capabilities: ['echo/api'],
      ttlMs: 60_000,
      context: { workspaceId: 'default' },
    });
    expect(minted.status).toBe(201);
    expect(minted.json.token).toMatch(/^avp_/);
    const ok = await fetch(`${fx.baseUrl}/v/echo/minted`, {
      headers: { authorization: `Bearer ${minted.json.token}` },
    });
    expect(ok.status).toBe(200);
    await ok.text();
    const admin = await call('GET', '/aivault/tokens', undefined, minted.json.token);
    expect(admin.json.error).toBe('operator_auth_required');
    const listed = await call('GET', '/aivault/tokens');
    expect(JSON.stringify(listed.json)).not.toContain(minted.json.token);
    expect((await call('DELETE', `/aivault/tokens/${minted.json.id}`)).status).toBe(200);
    const revoked = await fetch(`${fx.baseUrl}/v/echo/minted`, {
      headers: { authorization: `Bearer ${minted.json.token}` },
    });
    expect(revoked.status).toBe(401);
    await revoked.text();
    const bad = await call('POST', '/aivault/tokens/proxy', { capabilities: [] });
    expect(bad.json.error).toBe('invalid_request');
  });

  it('every operator call is audited, refused ones too', async () => {
    await call('GET', '/aivault/credentials', undefined, 'nope');
    const events = await new AuditLog(fx.config, vaultPaths(fx.config)).list({ limit: 500 });
    const ops = events.filter((e) => e.kind === 'http.operator');
    expect(ops.some((e) => e.errorCode === 'operator_auth_required')).toBe(true);
    expect(ops.some((e) => e.method === 'POST' && e.status === 201 && e.actor)).toBe(true);
    expect(JSON.stringify(events)).not.toMatch(/avp_|avo_/);
  });
});

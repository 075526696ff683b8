import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { envelope, json, SECRET, startFixture, type DaemonFixture } from './daemon-fixture.js';

let fx: DaemonFixture;
beforeAll(async () => {
  fx = await startFixture();
}, 60_000);
afterAll(() => fx?.close());

interface Seen {
  method: string;
  path: string;
  query: string;
  headers: Record<string, string>;
  body: string;
}

describe('aivaultd invoke (real uWS + piscina + crypto worker + TLS upstream)', () => {
  it('injects auth on the wire; the caller never sees the secret', async () => {
    const res = await fx.client.invoke(
      envelope('/v1/echo?x=1', 'POST', 'echo/api', {
        body: '{"hello":1}',
        headers: [['content-type', 'application/json']],
      }),
    );
    expect(res.status).toBe(200);
    const seen = json<Seen>(res.body);
    expect(seen).toMatchObject({ method: 'POST', path: '/v1/echo', query: 'x=1', body: '{"hello":1}' });
    // The upstream saw the secret; the echo of it comes back scrubbed, and no response header has it.
    expect(fx.upstream.requests.at(-1)?.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(seen.headers.authorization).toBe('Bearer [redacted:ECHO_TOKEN]');
    expect(res.scrubbed).toBe(1);
    expect(seen.headers.host).toBe('upstream.test');
    expect(JSON.stringify(res.headers)).not.toContain(SECRET);
  });

  it('runs 200 concurrent invocations over one connection', async () => {
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => fx.client.invoke(envelope(`/c/${i}`))),
    );
    results.forEach((r, i) => {
      expect(r.status).toBe(200);
      expect(json<Seen>(r.body).path).toBe(`/c/${i}`);
    });
  }, 30_000);

  it('strips set-cookie, authorization and other auth-class response headers', async () => {
    const res = await fx.client.invoke(envelope('/leaky-headers'));
    const names = res.headers.map(([n]) => n);
    expect(names).toContain('x-upstream');
    for (const banned of [
      'set-cookie',
      'authorization',
      'www-authenticate',
      'x-api-key',
      'proxy-authenticate',
    ]) {
      expect(names).not.toContain(banned);
    }
    expect(JSON.stringify(res.headers)).not.toContain('upstream-cookie');
  });

  it('returns a redirect to another host to the caller instead of following it (no auth leaves)', async () => {
    const before = fx.upstream.requests.length;
    const res = await fx.client.invoke(envelope('/redirect?to=https://other.test/steal'));
    expect(res.status).toBe(302);
    expect(res.headers).toContainEqual(['location', 'https://other.test/steal']);
    const after = fx.upstream.requests.slice(before);
    expect(after.map((r) => r.path)).toEqual(['/redirect']);
    expect(after.some((r) => r.path === '/steal')).toBe(false);
  });

  it('maps policy failures to error codes without touching the upstream', async () => {
    const before = fx.upstream.requests.length;
    await expect(fx.client.invoke(envelope('/x', 'DELETE'))).rejects.toMatchObject({
      code: 'policy_violation',
    });
    await expect(fx.client.invoke(envelope('/x', 'GET', 'nope/none'))).rejects.toMatchObject({
      code: 'capability_not_found',
    });
    await expect(fx.client.invoke(envelope('/../etc/passwd'))).rejects.toMatchObject({
      code: 'policy_violation',
    });
    await expect(
      fx.client.invoke({
        capability: 'echo/api',
        request: { method: 'GET', path: '/x', url: 'https://evil.test/' },
      } as never),
    ).rejects.toMatchObject({ code: 'policy_violation' });
    expect(fx.upstream.requests.length).toBe(before);
  });

  it('passes an upstream 401 through as a response', async () => {
    const res = await fx.client.invoke(envelope('/status/401'));
    expect(res.status).toBe(401);
  });

  it('maps a mid-stream reset to upstream_unreachable', async () => {
    await expect(fx.client.invoke(envelope('/reset'))).rejects.toMatchObject({
      code: 'upstream_unreachable',
    });
  });

  it('times out with upstream_unreachable and a clear message', async () => {
    const err = await fx.client.invoke(envelope('/stall'), {}, { timeoutMs: 300 }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'upstream_unreachable' });
    expect((err as Error).message).toContain('timed out after 300 ms');
  });

  it('reads secrets fresh from disk: a rotated value is used without a restart', async () => {
    await fx.vault.rotateSecret(fx.secretId, 'sk-rotated-value');
    await fx.client.invoke(envelope('/after-rotate'));
    expect(fx.upstream.requests.at(-1)?.headers.authorization).toBe('Bearer sk-rotated-value');
    await fx.vault.rotateSecret(fx.secretId, SECRET);
  });

  it('picks up rotate-master (new KEK on disk) without a restart', async () => {
    const before = await fx.client.operator('status');
    await fx.vault.rotateMaster({});
    await fx.client.invoke(envelope('/after-rotate-master'));
    expect(fx.upstream.requests.at(-1)?.headers.authorization).toBe(`Bearer ${SECRET}`);
    const after = await fx.client.operator('status');
    expect(after.kekFingerprint).not.toBe(before.kekFingerprint);
  });

  it('lock → vault_unavailable; unlock → works again (operator frames reach the crypto worker)', async () => {
    const locked = await fx.client.operator('lock');
    expect(locked.locked).toBe(true);
    await expect(fx.client.invoke(envelope('/locked'))).rejects.toMatchObject({ code: 'vault_unavailable' });
    const unlocked = await fx.client.operator('unlock', '');
    expect(unlocked.locked).toBe(false);
    const status = await fx.client.operator('status');
    expect(status).toMatchObject({ locked: false, provider: 'file', devVerified: true });
    expect(JSON.stringify(status)).not.toContain(SECRET);
    const res = await fx.client.invoke(envelope('/unlocked'));
    expect(res.status).toBe(200);
  });

  it('writes one audit event per call without secrets or query strings', async () => {
    const { readdirSync, readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    await fx.client.invoke(envelope('/audited?token=qsecret'));
    const dir = join(fx.config.vaultDir, 'audit');
    const lines = readdirSync(dir)
      .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n'))
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((e) => e.path === '/audited');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      kind: 'invoke',
      capability: 'echo/api',
      credential: 'echo',
      host: 'upstream.test',
      method: 'GET',
      status: 200,
    });
    expect(JSON.stringify(lines)).not.toContain('qsecret');
    expect(JSON.stringify(lines)).not.toContain(SECRET);
  });
});

/**
 * The official `openai` and `@anthropic-ai/sdk` packages, UNCHANGED, in a separate process whose only
 * configuration is the standard SDK variables: base URL = the broker's `/v/{credential}` passthrough, API
 * key = a proxy token. The mock upstream (playing api.openai.com / api.anthropic.com) sees the real keys;
 * the SDK process never has them.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANTHROPIC_SECRET, OPENAI_SECRET, startHttpFixture, type HttpFixture } from '../http/http-fixture.js';

const SCRIPT = resolve('test/e2e/sdk/scripts/sdk-call.mjs');

let fx: HttpFixture;
beforeAll(async () => {
  fx = await startHttpFixture();
}, 60_000);
afterAll(() => fx?.close());

interface SdkOutput {
  env: Record<string, string>;
  openai?: { normal: string; streamed: string; chunks: number };
  anthropic?: { normal: string; streamed: string; events: number };
}

function runScript(which: string, env: Record<string, string>): Promise<SdkOutput> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [SCRIPT, which], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`sdk script exited ${code}: ${stderr}`));
      resolvePromise(JSON.parse(stdout) as SdkOutput);
    });
  });
}

/** A minimal child environment: PATH + the SDK variables, nothing else. */
function sdkEnv(extra: Record<string, string>): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', ...extra };
}

describe('unchanged SDKs through /v/{credential} passthrough', () => {
  it('openai: a normal and a streaming chat completion', async () => {
    const token = await fx.mint({ capabilities: ['openai/*'] });
    const before = fx.upstream.requests.length;
    const out = await runScript(
      'openai',
      sdkEnv({ OPENAI_BASE_URL: `${fx.baseUrl}/v/openai/v1`, OPENAI_API_KEY: token }),
    );
    expect(out.openai?.normal).toBe('Hello from the mock');
    expect(out.openai?.streamed).toBe('Hello from the mock');
    expect(out.openai?.chunks).toBeGreaterThanOrEqual(4);
    const seen = fx.upstream.requests.slice(before);
    expect(seen).toHaveLength(2);
    for (const r of seen) {
      expect(r.path).toBe('/v1/chat/completions');
      expect(r.headers.authorization).toBe(`Bearer ${OPENAI_SECRET}`);
      expect(JSON.stringify(r.headers)).not.toContain(token);
    }
    expect(JSON.stringify(out.env)).not.toContain(OPENAI_SECRET);
    expect(out.env.OPENAI_API_KEY).toBe(token);
  }, 30_000);

  it('anthropic: a normal and a streaming message', async () => {
    const token = await fx.mint({ capabilities: ['anthropic/messages'] });
    const before = fx.upstream.requests.length;
    const out = await runScript(
      'anthropic',
      sdkEnv({ ANTHROPIC_BASE_URL: `${fx.baseUrl}/v/anthropic`, ANTHROPIC_API_KEY: token }),
    );
    expect(out.anthropic?.normal).toBe('Hello from the mock');
    expect(out.anthropic?.streamed).toBe('Hello from the mock');
    const seen = fx.upstream.requests.slice(before);
    expect(seen).toHaveLength(2);
    for (const r of seen) {
      expect(r.path).toBe('/v1/messages');
      expect(r.headers['x-api-key']).toBe(ANTHROPIC_SECRET);
      expect(r.headers['anthropic-version']).toBeDefined();
      expect(JSON.stringify(r.headers)).not.toContain(token);
    }
    expect(JSON.stringify(out.env)).not.toContain(ANTHROPIC_SECRET);
  }, 30_000);

  it('a token scoped to anthropic cannot drive the openai passthrough', async () => {
    const token = await fx.mint({ capabilities: ['anthropic/*'] });
    const res = await fetch(`${fx.baseUrl}/v/openai/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: '{"model":"x","messages":[]}',
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toBe('policy_violation');
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { invokeInProcess } from '../../src/request-worker/pipeline/in-process.js';
import { envelope, json, SECRET, startFixture, type DaemonFixture } from './daemon-fixture.js';

let fx: DaemonFixture;
beforeAll(async () => {
  fx = await startFixture({ workers: 1 });
}, 60_000);
afterAll(() => fx?.close());

describe('pipeline in-process (AIVAULTD_DISABLE=1)', () => {
  it('runs the same policy → auth → upstream → sanitize pipeline without the daemon', async () => {
    const res = await invokeInProcess(
      fx.config,
      fx.vault,
      envelope('/in-process?q=1', 'POST', 'echo/api', { body: 'x' }),
    );
    expect(res.status).toBe(200);
    const seen = json<{ path: string; headers: Record<string, string>; body: string }>(res.body);
    expect(seen.path).toBe('/in-process');
    expect(fx.upstream.requests.at(-1)?.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(seen.headers.authorization).toBe('Bearer [redacted:ECHO_TOKEN]');
    expect(res.scrubbed).toBe(1);
    expect(res.headers.map(([n]) => n)).not.toContain('set-cookie');
  });

  it('gives the same error codes', async () => {
    await expect(invokeInProcess(fx.config, fx.vault, envelope('/x', 'PUT'))).rejects.toMatchObject({
      code: 'policy_violation',
    });
    await expect(
      invokeInProcess(fx.config, fx.vault, envelope('/stall'), {}, { timeoutMs: 200 }),
    ).rejects.toMatchObject({
      code: 'upstream_unreachable',
    });
  });
});

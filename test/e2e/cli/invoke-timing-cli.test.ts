// `aivault invoke -v` shows the daemon's per-stage breakdown (policy, secret, upstream, total): real CLI
// processes, an autostarted aivaultd, a real HTTPS upstream. In-process runs have no daemon stages and
// print none; without -v nothing is added to the output.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stopDaemon } from '../../../src/cli/commands/daemon.js';
import { startHttpsUpstream, type HttpsUpstream } from '../../support/https-upstream.js';
import { createTestCa } from '../../support/test-ca.js';
import { isolatedEnv, parseJson, registerSecret, runCli } from '../../support/run-cli.js';
import { tmpDir } from '../../support/tmp-dir.js';

const KEY = registerSecret('sk-live-e2e-timing-9b2c4d6e8f0a');
let upstream: HttpsUpstream;
let env: Record<string, string>;
let vaultDir: string;

beforeAll(async () => {
  upstream = await startHttpsUpstream();
  const ca = createTestCa();
  vaultDir = join(tmpDir(), 'vault');
  env = isolatedEnv(vaultDir, {
    AIVAULT_DEV_RESOLVE: `api.openai.com=127.0.0.1:${upstream.port}`,
    AIVAULT_DEV_CA_CERT_PATH: ca.caCertPath,
  });
  expect((await runCli(['init', '--dev'], { env })).code).toBe(0);
  const created = await runCli(['secrets', 'create', '--name', 'OPENAI_API_KEY', '--value-stdin'], {
    env,
    input: KEY,
  });
  expect(created.code, created.stderr).toBe(0);
});

afterAll(async () => {
  await stopDaemon(join(vaultDir, 'run', 'aivaultd.sock')).catch(() => undefined);
  await upstream.close();
});

interface Timing {
  policy: number;
  secret: number;
  upstream: number;
  total: number;
}

describe('aivault invoke -v timing', () => {
  it('prints policy, secret, upstream and total milliseconds from the daemon', async () => {
    const res = await runCli(['invoke', 'openai/models', '-v'], { env });
    expect(res.code, res.stderr).toBe(0);
    const out = parseJson<{ status: number; body: string; timing: Timing }>(res);
    expect(out.status).toBe(200);
    for (const stage of ['policy', 'secret', 'upstream', 'total'] as const) {
      expect(typeof out.timing[stage], stage).toBe('number');
      expect(out.timing[stage], stage).toBeGreaterThanOrEqual(0);
    }
    expect(out.timing.upstream).toBeGreaterThan(0);
    expect(out.timing.total).toBeGreaterThanOrEqual(out.timing.upstream);
    // json/markdown modes carry it too.
    const json = parseJson<{ timing: Timing }>(await runCli(['json', 'openai/models', '-v'], { env }));
    expect(json.timing.total).toBeGreaterThan(0);
  });

  it('a streamed invoke -v prints the breakdown on stderr, the body untouched on stdout', async () => {
    const res = await runCli(['invoke', 'openai/models', '--stream', '-v'], { env });
    expect(res.code, res.stderr).toBe(0);
    // The upstream echoes the request: stdout is exactly that body, nothing appended.
    expect(JSON.parse(res.stdout)).toMatchObject({ method: 'GET', path: '/v1/models' });
    const line = /timing: (\{.*\})/.exec(res.stderr)?.[1];
    expect(line, res.stderr).toBeDefined();
    expect((JSON.parse(line as string) as Timing).total).toBeGreaterThan(0);
  });

  it('without -v, or in-process, there is no timing', async () => {
    const plain = await runCli(['invoke', 'openai/models'], { env });
    expect(plain.code, plain.stderr).toBe(0);
    expect(plain.stdout).not.toContain('"timing"');
    const local = await runCli(['invoke', 'openai/models', '-v'], { env: { ...env, AIVAULTD_DISABLE: '1' } });
    expect(local.code, local.stderr).toBe(0);
    expect(parseJson<{ timing?: unknown }>(local).timing).toBeUndefined();
  });
});

/**
 * Attack (SPEC §9): the attacker sets AIVAULT_DEV_RESOLVE=api.openai.com=<collector>, a CA it controls,
 * non-default ports and HTTP/1-only, hoping the broker sends the real key to its server. Stopped by: dev
 * overrides are honoured only by a vault created with `init --dev` (flag MAC'd with a KEK-derived key);
 * on a real vault they are parsed, reported by `status` as requested-but-not-honoured, and ignored.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headerCredentialArgs } from '../support/run-cli.js';
import { startAttackEnv, wireError, type AttackEnv } from './support/attack-env.js';

let a: AttackEnv;
beforeAll(async () => {
  a = await startAttackEnv({ dev: false, extraEnv: { AIVAULT_DEV_ALLOW_NON_DEFAULT_PORTS: '1' } });
});
afterAll(() => a?.close());

describe('attack: dev overrides on a real (non-dev) vault', () => {
  it('status says the overrides are requested but NOT honoured', async () => {
    const st = JSON.parse((await a.cli(['-v', 'status'])).stdout) as Record<string, unknown>;
    expect(st).toMatchObject({ dev: false, devOverridesRequested: true, devOverridesHonoured: false });
  });

  it('invocations ignore the mapping: the collector standing in for api.openai.com gets nothing', async () => {
    for (const extra of [{}, { AIVAULTD_DISABLE: '1' }]) {
      for (const cap of ['openai/models', 'echo/api']) {
        const r = await a.cli(
          [
            '-v',
            'invoke',
            cap,
            '--path',
            cap === 'echo/api' ? '/v1/x' : '/v1/models',
            '--timeout-ms',
            '5000',
          ],
          extra,
        );
        expect(r.code).not.toBe(0);
        // Real DNS (offline here) or a real CA check — never the attacker's mock.
        expect(['upstream_unreachable', 'policy_violation']).toContain(wireError(r).error);
      }
    }
    expect(a.upstream.requests).toEqual([]);
  });

  it('a non-default port in a credential host is still refused on a real vault', async () => {
    const c = await a.cli([
      ...headerCredentialArgs({
        id: 'p',
        secretRef: `vault:secret:${a.echoSecretId}`,
        header: 'x-k',
        template: '{{secret}}',
        host: `upstream.test:${a.upstream.port}`,
      }),
    ]);
    if (c.code === 0) {
      expect(
        (
          await a.cli([
            'capability',
            'create',
            'p/api',
            '--credential',
            'p',
            '--method',
            'GET',
            '--path',
            '/',
          ])
        ).code,
      ).toBe(0);
      const r = await a.cli(['-v', 'invoke', 'p/api', '--path', '/x']);
      expect(wireError(r).error).toBe('policy_violation');
    }
    expect(a.upstream.requests).toEqual([]);
  });
});

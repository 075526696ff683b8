/** Fleet settings: env + flags, validation as usage errors, URLs never printed with credentials. */
import { describe, expect, it } from 'vitest';
import { parseFleetSettings, redactUrl } from '../../../src/stores/fleet/config.js';
import { parseArgs } from '../../../src/front/main.js';

describe('fleet settings', () => {
  it('reads AIVAULT_FLEET_* and lets flags win', () => {
    const env = {
      AIVAULT_FLEET_REDIS: 'redis://10.0.0.1:6379/0',
      AIVAULT_FLEET_ID: 'ci',
      AIVAULT_FLEET_FAIL_OPEN: '1',
      AIVAULT_FLEET_AUDIT_POSTGRES: 'postgres://u@db/audit',
      AIVAULT_FLEET_NODE: 'runner-1',
    };
    expect(parseFleetSettings(env)).toEqual({
      redisUrl: 'redis://10.0.0.1:6379/0',
      id: 'ci',
      failOpen: true,
      auditPostgresUrl: 'postgres://u@db/audit',
      node: 'runner-1',
    });
    expect(parseFleetSettings(env, { id: 'prod', redisUrl: 'rediss://r:6380' })).toMatchObject({
      id: 'prod',
      redisUrl: 'rediss://r:6380',
    });
    const none = parseFleetSettings({});
    expect(none.redisUrl).toBeUndefined();
    expect(none.auditPostgresUrl).toBeUndefined();
    expect(none).toMatchObject({ id: 'default', failOpen: false });
  });

  it.each([
    [{ redisUrl: 'http://x' }, /--fleet-redis: expected a redis or rediss URL/],
    [{ redisUrl: 'not a url' }, /--fleet-redis is not a URL/],
    [{ auditPostgresUrl: 'mysql://x' }, /--fleet-audit-postgres: expected a postgres/],
    [{ id: 'a b' }, /--fleet-id must be/],
    [{ id: 'x:y' }, /--fleet-id must be/],
    [{ node: '' }, /--fleet-node must be/],
  ])('refuses %o as a usage error', (o, msg) => {
    expect(() => parseFleetSettings({}, o)).toThrow(msg);
    try {
      parseFleetSettings({}, o);
    } catch (err) {
      expect((err as { code?: string }).code).toBe('usage');
    }
  });

  it('redacts credentials from URLs', () => {
    expect(redactUrl('redis://:hunter2@r:6379/0')).toBe('redis://r:6379/0');
    expect(redactUrl('postgres://u:pw@db:5432/a')).toBe('postgres://db:5432/a');
  });

  it('aivaultd --fleet-* flags', () => {
    const { options } = parseArgs([
      '--fleet-redis',
      'redis://127.0.0.1:6379/0',
      '--fleet-id',
      'team',
      '--fleet-fail-open',
      '--fleet-audit-postgres',
      'postgres://a@127.0.0.1/x',
      '--fleet-node',
      'n1',
    ]);
    expect(options.fleet).toEqual({
      redisUrl: 'redis://127.0.0.1:6379/0',
      id: 'team',
      failOpen: true,
      auditPostgresUrl: 'postgres://a@127.0.0.1/x',
      node: 'n1',
    });
    expect(parseArgs([]).options.fleet).toBeUndefined();
    expect(() => parseArgs(['--fleet-redis', 'http://x'])).toThrow(/redis/);
  });
});

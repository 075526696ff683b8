/**
 * Attack (seed 002, SPEC §6.4): SSRF / host injection — make the broker talk to a host the attacker picks:
 * loopback, private, link-local, cloud metadata, IPv6 and IPv4-mapped forms, odd IPv4 spellings, DNS names
 * resolving there, non-default ports, other schemes. Tried as an attacker would: through the CLI
 * (credential/capability create with such hosts, caller-supplied URL fields), by hand-editing broker.json
 * (bypassing create-time validation) so the connect-time guard is hit, and against the real transport
 * (`Upstream`) with an injected resolver for DNS names (the system resolver cannot be steered offline).
 * Stopped by: host from policy only; host validation at create; connect-time address guard
 * (src/core/broker/addresses.ts via undici `connect.lookup`); https + default port only.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isForbiddenAddress } from '../../src/core/broker/addresses.js';
import { Upstream } from '../../src/request-worker/pipeline/upstream.js';
import { loadConfig } from '../../src/core/config/env.js';
import { headerCredentialArgs } from '../support/run-cli.js';
import { startAttackEnv, wireError, type AttackEnv } from './support/attack-env.js';

const FORBIDDEN = [
  '127.0.0.1',
  '127.255.255.254',
  '0.0.0.0',
  '10.0.0.1',
  '172.16.0.1',
  '172.31.255.255',
  '192.168.1.1',
  '169.254.169.254',
  '169.254.170.2',
  '100.100.100.200',
  '100.64.0.1',
  '192.0.0.192',
  '224.0.0.1',
  '255.255.255.255',
  '::1',
  '::',
  'fe80::1',
  'fe80::1%eth0',
  'fc00::1',
  'fd00:ec2::254',
  '::ffff:127.0.0.1',
  '::ffff:7f00:1',
  '::ffff:169.254.169.254',
  '::ffff:10.0.0.1',
  '::127.0.0.1',
  '::7f00:1',
  '64:ff9b::7f00:1',
  '64:ff9b::a9fe:a9fe',
  '2002:7f00:1::',
  '2002:a9fe:a9fe::1',
  '[::1]',
  '[::ffff:127.0.0.1]',
  'ff02::1',
  // Non-canonical IPv4 spellings that some resolvers/stacks read as 127.0.0.1: refused, not reinterpreted.
  '127.1',
  '0177.0.0.1',
  '0x7f.0.0.1',
  '2130706433',
  '0x7f000001',
  '127.0.0.1.',
  ' 127.0.0.1',
  '',
];

describe('attack: SSRF to private, loopback, link-local and metadata addresses', () => {
  it('the connect-time guard refuses every forbidden form (v4, v6, mapped, NAT64, 6to4, odd spellings)', () => {
    for (const addr of FORBIDDEN) expect(isForbiddenAddress(addr), addr).toBe(true);
    for (const addr of ['104.18.7.192', '8.8.8.8', '2606:4700::1111', '2a00:1450:4001:80b::200e']) {
      expect(isForbiddenAddress(addr), addr).toBe(false);
    }
  });

  describe('through the CLI', () => {
    let a: AttackEnv;
    beforeAll(async () => {
      a = await startAttackEnv();
    });
    afterAll(() => a?.close());

    it('credentials and capabilities with IP-literal, local, port or scheme hosts are refused at create', async () => {
      const hosts = [
        '127.0.0.1',
        '169.254.169.254',
        '[::1]',
        '::1',
        '[::ffff:127.0.0.1]',
        'localhost',
        'upstream.test/x',
        'http://upstream.test',
        'upstream.test/x',
        'user@upstream.test',
        '2130706433',
        '0x7f.1',
        'upstream.test#@evil.test',
      ];
      for (const host of hosts) {
        const r = await a.cli([
          '-v',
          'credential',
          'create',
          `c${Math.random().toString(36).slice(2, 8)}`,
          '--provider',
          'ssrf',
          '--secret-ref',
          `vault:secret:${a.echoSecretId}`,
          '--auth',
          'header',
          '--header-name',
          'x-k',
          '--value-template',
          '{{secret}}',
          '--host',
          host,
        ]);
        expect(r.code, host).not.toBe(0);
        expect(['usage', 'policy_violation', 'invalid_request']).toContain(wireError(r).error);
      }
      // A non-default port is refused at create (the rule invoke applies: https + default port only).
      for (const host of ['upstream.test:22', '*.upstream.test:8443']) {
        const c = await a.cli([
          '-v',
          ...headerCredentialArgs({
            id: 'portcred',
            provider: 'ssrf',
            secretRef: `vault:secret:${a.echoSecretId}`,
            header: 'x-k',
            template: '{{secret}}',
            host: host,
          }),
        ]);
        expect(c.code, host).toBe(2);
        expect(wireError(c)).toMatchObject({
          error: 'usage',
          message: expect.stringContaining('only the default https port is allowed'),
        });
      }
    });

    it('caller-supplied url/host/authority fields in the envelope are refused or ignored', async () => {
      for (const req of [
        { method: 'GET', path: '/v1/x', url: 'https://169.254.169.254/latest/meta-data/' },
        { method: 'GET', path: 'https://127.0.0.1/v1/x' },
        { method: 'GET', path: '//127.0.0.1/v1/x' },
        { method: 'GET', path: '/v1/x', headers: { host: '169.254.169.254' } },
        { method: 'GET', path: '/v1/x', headers: { 'x-forwarded-host': '127.0.0.1' } },
      ]) {
        const before = a.raw.length;
        const r = await a.cli(['-v', 'invoke', 'echo/api', '--request', JSON.stringify(req)]);
        if (r.code === 0) for (const x of a.raw.slice(before)) expect(x.host).toBe('upstream.test');
        else expect(['policy_violation', 'invalid_request']).toContain(wireError(r).error);
      }
    });

    it('a hand-edited broker.json with a loopback/metadata host is stopped at connect time', async () => {
      const path = join(a.vaultDir, 'broker.json');
      const original = readFileSync(path, 'utf8');
      try {
        for (const host of ['127.0.0.1', '169.254.169.254', '[::1]', '[::ffff:7f00:1]', 'localhost']) {
          const b = JSON.parse(original) as {
            credentials: { id: string; hosts?: string[] }[];
            capabilities: { id: string; allow: { hosts: string[] } }[];
          };
          b.credentials.find((c) => c.id === 'echo')!.hosts = [host];
          b.capabilities.find((c) => c.id === 'echo/api')!.allow.hosts = [host];
          writeFileSync(path, JSON.stringify(b));
          const before = a.upstream.requests.length;
          for (const extra of [{}, { AIVAULTD_DISABLE: '1' }]) {
            const r = await a.cli(
              ['-v', 'invoke', 'echo/api', '--path', '/v1/x', '--timeout-ms', '3000'],
              extra,
            );
            expect(r.code, `${host} ${JSON.stringify(extra)} ${r.stdout} ${r.stderr}`).not.toBe(0);
            expect(['policy_violation', 'storage_corrupt']).toContain(wireError(r).error);
          }
          expect(a.upstream.requests.length).toBe(before);
        }
      } finally {
        writeFileSync(path, original);
      }
    });
  });

  describe('DNS names resolving to forbidden addresses (real transport, injected resolver)', () => {
    it('a name resolving to loopback where a server really listens is refused; nothing reaches it', async () => {
      const a = await startAttackEnv({ seed: false });
      try {
        for (const answer of ['127.0.0.1', '::1', '::ffff:127.0.0.1', '169.254.169.254', '10.1.2.3']) {
          const up = new Upstream({
            connectTimeoutMs: 2000,
            resolve: () => Promise.resolve([{ address: answer, family: answer.includes(':') ? 6 : 4 }]),
          });
          try {
            const err = await up
              .request({
                host: 'innocent.example.com',
                port: a.upstream.port,
                method: 'GET',
                pathAndQuery: '/x',
                headers: [],
              })
              .then(
                () => undefined,
                (e: unknown) => e as { code?: string },
              );
            expect(err?.code, answer).toBe('policy_violation');
          } finally {
            await up.close();
          }
        }
        expect(a.upstream.requests).toEqual([]);
        // Control: the same request through an operator's explicit dev mapping does reach the mock, so the
        // refusals above are the guard, not a broken setup.
        const dev = loadConfig({ ...a.env, HOME: a.home }).devRequested;
        const ok = new Upstream({
          dev: {
            ...dev,
            resolve: new Map([['upstream.test', { address: '127.0.0.1', port: a.upstream.port }]]),
          },
        });
        try {
          const res = await ok.request({
            host: 'upstream.test',
            port: 443,
            method: 'GET',
            pathAndQuery: '/x',
            headers: [],
          });
          await res.body.text();
          expect(res.statusCode).toBe(200);
        } finally {
          await ok.close();
        }
      } finally {
        await a.close();
      }
    });

    it('an answer mixing a public and a private address fails closed', async () => {
      const up = new Upstream({
        connectTimeoutMs: 1000,
        resolve: () =>
          Promise.resolve([
            { address: '93.184.216.34', family: 4 },
            { address: '127.0.0.1', family: 4 },
          ]),
      });
      try {
        const err = await up
          .request({ host: 'mixed.example.com', port: 443, method: 'GET', pathAndQuery: '/', headers: [] })
          .then(
            () => undefined,
            (e: unknown) => e as { code?: string },
          );
        expect(err?.code).toBe('policy_violation');
      } finally {
        await up.close();
      }
    });
  });
});

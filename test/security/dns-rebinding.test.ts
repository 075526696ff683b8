/**
 * Attack (SPEC §6.4): DNS rebinding — the name resolves to a public address when policy is checked and to
 * 127.0.0.1 / 169.254.169.254 when the broker connects (TTL 0). The system resolver cannot be steered
 * offline, so the real transport (`Upstream`, undici + guarded connector) gets an injected resolver that
 * answers public first and private afterwards. Stopped by: the broker never resolves at check time; the
 * address guard runs inside undici's `connect.lookup` on EVERY new connection, on the address actually
 * dialled.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LookupAddress } from 'node:dns';
import { Upstream } from '../../src/request-worker/pipeline/upstream.js';
import { startHttpsUpstream, type HttpsUpstream } from '../support/https-upstream.js';

let mock: HttpsUpstream;
beforeAll(async () => {
  mock = await startHttpsUpstream();
});
afterAll(() => mock?.close());

function rebinding(sequence: string[]): {
  resolve: (h: string) => Promise<LookupAddress[]>;
  calls: string[];
} {
  const calls: string[] = [];
  return {
    calls,
    resolve: (host) => {
      const address = sequence[Math.min(calls.length, sequence.length - 1)] as string;
      calls.push(`${host}->${address}`);
      return Promise.resolve([{ address, family: address.includes(':') ? 6 : 4 }]);
    },
  };
}

async function attempt(up: Upstream, host: string, port: number): Promise<string> {
  try {
    const res = await up.request({
      host,
      port,
      method: 'GET',
      pathAndQuery: '/rebind',
      headers: [['authorization', 'Bearer k']],
    });
    await res.body.text();
    return `status ${res.statusCode}`;
  } catch (e) {
    return (e as { code?: string }).code ?? 'error';
  }
}

describe('attack: DNS rebinding between policy check and connect', () => {
  it('public at first answer, loopback at the next: the connection to loopback is refused', async () => {
    const r = rebinding(['93.184.216.34', '127.0.0.1']);
    const up = new Upstream({ connectTimeoutMs: 500, resolve: r.resolve });
    try {
      // 1st connection: the public answer (unroutable offline → unreachable, never policy-refused).
      expect(await attempt(up, 'rebind.example.com', mock.port)).toBe('upstream_unreachable');
      // 2nd connection: rebinding answer → refused by the guard at connect time.
      expect(await attempt(up, 'rebind.example.com', mock.port)).toBe('policy_violation');
      expect(await attempt(up, 'rebind.example.com', mock.port)).toBe('policy_violation');
      expect(r.calls.length).toBeGreaterThanOrEqual(3); // resolved per connection, not cached by the broker
      expect(mock.requests).toEqual([]);
    } finally {
      await up.close();
    }
  });

  it('rebinding to metadata (v4, v6, IPv4-mapped) is refused on every attempt', async () => {
    for (const target of ['169.254.169.254', 'fd00:ec2::254', '::ffff:169.254.169.254', '::ffff:a9fe:a9fe']) {
      const r = rebinding([target]);
      const up = new Upstream({ connectTimeoutMs: 500, resolve: r.resolve });
      try {
        expect(await attempt(up, 'rebind.example.com', mock.port), target).toBe('policy_violation');
      } finally {
        await up.close();
      }
    }
    expect(mock.requests).toEqual([]);
  });

  it('a kept-alive pool does not let a rebinding answer reuse an approved connection to a new address', async () => {
    // Each Upstream.request to a host opens connections through the guarded lookup only; there is no
    // pre-resolved IP cache that a later request could reuse after the name changed.
    const r = rebinding(['127.0.0.1']);
    const up = new Upstream({ connectTimeoutMs: 500, resolve: r.resolve });
    try {
      const results = await Promise.all([1, 2, 3].map(() => attempt(up, 'rebind.example.com', mock.port)));
      expect(results).toEqual(['policy_violation', 'policy_violation', 'policy_violation']);
      expect(mock.requests).toEqual([]);
    } finally {
      await up.close();
    }
  });
});

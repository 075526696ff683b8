/**
 * checkRequest throughput on a realistic snapshot (60 providers × 5 capabilities, 100 credentials,
 * a few policies and bindings), raced against a trivial baseline in the same run: JSON.parse of the
 * same envelope (what any transport pays anyway). Prints ops/s, µs/op and the ratio.
 * Run: node --import tsx bench/policy-check.bench.ts
 */
import { performance } from 'node:perf_hooks';
import { checkRequest } from '../src/core/broker/policy.js';
import { capabilityFromRegistry } from '../src/core/broker/resolve-capability.js';
import type { BrokerSnapshot, Capability, Credential, SecretInfo } from '../src/core/broker/types.js';
import { compileRegistry } from '../src/core/registry/compile.js';
import type { RegistryProvider } from '../src/core/registry/types.js';

const PROVIDERS = 60;
const providers: RegistryProvider[] = Array.from({ length: PROVIDERS }, (_, p) => ({
  provider: `prov${p}`,
  vaultSecrets: { [`PROV${p}_API_KEY`]: 'secret' },
  auth: {
    header: { header_name: p % 2 ? 'authorization' : 'x-api-key', value_template: 'Bearer {{secret}}' },
  },
  hosts: [`api.prov${p}.com`],
  capabilities: Array.from({ length: 5 }, (_, c) => ({
    id: `prov${p}/cap${c}`,
    provider: `prov${p}`,
    allow: {
      hosts: [`api.prov${p}.com`],
      methods: ['GET' as const, 'POST' as const],
      pathPrefixes: [`/v1/things${c}`, `/v2/other${c}`],
    },
  })),
}));
const registry = compileRegistry(providers);

const secrets: SecretInfo[] = [];
const credentials: Credential[] = [];
for (let i = 0; i < 100; i++) {
  const p = i % PROVIDERS;
  const scope =
    i < PROVIDERS ? { kind: 'global' as const } : { kind: 'workspace' as const, workspaceId: `w${i}` };
  secrets.push({
    id: `s${i}`,
    name: `PROV${p}_API_KEY`,
    scope,
    attachedGroups: [],
    pinnedProvider: `prov${p}`,
  });
  const provider = registry.getProvider(`prov${p}`) as RegistryProvider;
  credentials.push({
    id: `cred${i}`,
    provider: provider.provider,
    auth: provider.auth,
    hosts: provider.hosts,
    secretRefs: { secret: `s${i}` },
    source: 'registry',
    createdAtMs: 0,
  });
}
const capabilities = new Map<string, Capability>();
for (const p of registry.providers)
  for (const c of p.capabilities) capabilities.set(c.id, capabilityFromRegistry(c));
const snapshot: BrokerSnapshot = {
  credentials: new Map(credentials.map((c) => [c.id, c])),
  capabilities,
  policies: new Map([
    ['prov7/cap2', { capabilityId: 'prov7/cap2', rateLimitPerMinute: 600, maxRequestBodyBytes: 1 << 20 }],
  ]),
  bindings: [{ capabilityId: 'prov9/cap1', secretRef: 'vault:secret:s9', scope: { kind: 'global' } }],
  secrets: new Map(secrets.map((s) => [s.id, s])),
};

const envelopeText = JSON.stringify({
  capability: 'prov7/cap2',
  request: {
    method: 'POST',
    path: '/v1/things2/items/abc%20def?limit=10&order=desc',
    headers: [
      ['content-type', 'application/json'],
      ['accept', 'application/json'],
      ['x-request-id', 'req_123'],
      ['user-agent', 'bench/1.0'],
    ],
    body: JSON.stringify({ model: 'x', input: 'hello world '.repeat(20) }),
  },
});
const envelope: unknown = JSON.parse(envelopeText);
const context = { workspaceId: 'w70' };

function measure(name: string, fn: () => unknown, iterations: number): number {
  for (let i = 0; i < Math.min(iterations, 20_000); i++) fn(); // warm up the JIT
  const start = performance.now();
  for (let i = 0; i < iterations; i++) fn();
  const ms = performance.now() - start;
  const opsPerSec = (iterations / ms) * 1000;
  console.log(
    `${name.padEnd(34)} ${Math.round(opsPerSec).toLocaleString('en-US').padStart(12)} ops/s  ${((ms * 1000) / iterations).toFixed(3)} µs/op`,
  );
  return opsPerSec;
}

const sanity = checkRequest({ envelope, context, snapshot, registry });
if (!sanity.ok) throw sanity.error;

const N = Number(process.env.BENCH_ITERATIONS ?? 200_000);
const baseline = measure('baseline JSON.parse(envelope)', () => JSON.parse(envelopeText), N);
const check = measure(
  'checkRequest (parsed envelope)',
  () => checkRequest({ envelope, context, snapshot, registry }),
  N,
);
const both = measure(
  'JSON.parse + checkRequest',
  () => checkRequest({ envelope: JSON.parse(envelopeText), context, snapshot, registry }),
  N,
);
console.log(`\ncheckRequest costs ${(baseline / check).toFixed(2)}× a JSON.parse of the same envelope`);
console.log(`end-to-end (parse + check) is ${(baseline / both).toFixed(2)}× the baseline`);

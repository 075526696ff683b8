/**
 * Randomized property-based fuzzing (fast-check) of the parsers on the untrusted boundary. Each target
 * runs for FUZZ_SECONDS (default 3 in `npm test`; `npm run fuzz` sets 60) or FUZZ_RUNS inputs, whichever
 * ends first, with a fixed seed per run printed on failure so any finding replays. The coverage-guided counterpart
 * over the same oracles is jazzer/jazzer.test.ts.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  fuzzBrokerFile,
  fuzzEnvelope,
  fuzzFrame,
  fuzzFrameValue,
  fuzzHost,
  fuzzPath,
  fuzzRoute,
} from './targets.js';

const SECONDS = Number(process.env.FUZZ_SECONDS ?? '3');
const RUNS = Number(process.env.FUZZ_RUNS ?? '1000000');
const TIMEOUT = (SECONDS * 2 + 30) * 1000;

function run<T>(arb: fc.Arbitrary<T>, target: (v: T) => void): number {
  let n = 0;
  const res = fc.check(
    fc.property(arb, (v) => {
      n++;
      target(v);
    }),
    { numRuns: RUNS, interruptAfterTimeLimit: SECONDS * 1000, markInterruptAsFailure: false },
  );
  if (res.failed) throw new Error(fc.defaultReportMessage(res) ?? 'fuzz failure');
  process.stdout.write(`fuzz: ${n} inputs in ${SECONDS}s (seed ${res.seed})\n`);
  return n;
}

const pathChars = fc.constantFrom(
  '/',
  '.',
  '..',
  '%',
  '%2e',
  '%2E',
  '%2f',
  '%2F',
  '%5c',
  '\\',
  '%00',
  '%0a',
  '%25',
  '%c0%ae',
  '%ff',
  ';',
  '?',
  '#',
  'a',
  'v1',
  'é',
  ' ',
  '\t',
  '\u0000',
  '%u002e',
  '~',
  '=',
  '&',
  '%252e',
  '%c3%a9',
  '．',
);
const pathArb = fc.oneof(
  fc.array(pathChars, { maxLength: 24 }).map((xs) => xs.join('')),
  fc.array(pathChars, { maxLength: 24 }).map((xs) => `/v1/${xs.join('')}`),
  fc.string({ maxLength: 64 }),
  fc.string({ unit: 'binary', maxLength: 64 }),
);
const label = fc.oneof(
  fc.constantFrom(
    'a',
    'api',
    'openai',
    'com',
    'xn--80ak6aa92e',
    'co',
    '0x7f',
    '127',
    '1',
    '-a',
    'a-',
    'ÄÖ',
    'EXAMPLE',
    '',
  ),
  fc.stringMatching(/^[a-z0-9-]{1,12}$/),
);
const hostArb = fc.oneof(
  fc.array(label, { minLength: 1, maxLength: 5 }).map((ls) => ls.join('.')),
  fc
    .array(label, { minLength: 1, maxLength: 5 })
    .map((ls) => `${ls.join('.')}${fc.sample(fc.constantFrom('', '.', ':443', ':8443', '@x', '/'), 1)[0]}`),
  fc.string({ maxLength: 40 }),
);
const patternArb = fc.oneof(
  hostArb,
  hostArb.map((h) => `*.${h}`),
);
// Pairs built to land near the interesting boundaries: host = label + '.' + pattern suffix (± a label).
const nearPairArb = fc
  .tuple(hostArb, label, fc.boolean(), fc.constantFrom('', ':443', ':8443'))
  .map(
    ([base, l, deeper, port]) =>
      [`*.${base}${port}`, `${deeper ? `x.${l}` : l}.${base}${port}`] as [string, string],
  );

const headerList = fc.array(fc.tuple(fc.string({ maxLength: 20 }), fc.string({ maxLength: 40 })), {
  maxLength: 4,
});
const requestArb = fc.record(
  {
    method: fc.oneof(
      fc.constantFrom('GET', 'POST', 'get', 'TRACE', 'CONNECT', ''),
      fc.string({ maxLength: 8 }),
    ),
    path: pathArb,
    headers: fc.oneof(headerList, fc.dictionary(fc.string({ maxLength: 12 }), fc.string({ maxLength: 20 }))),
    body: fc.string({ maxLength: 40 }),
    bodyBase64: fc.base64String({ maxLength: 40 }),
    bodyFilePath: fc.string({ maxLength: 20 }),
    multipart: fc.array(
      fc.record({ name: fc.string({ maxLength: 8 }), value: fc.string({ maxLength: 8 }) }),
      { maxLength: 3 },
    ),
    url: fc.constantFrom('https://evil.test/', '//x'),
  },
  { requiredKeys: [] },
);
const envelopeArb = fc.oneof(
  fc.record(
    {
      capability: fc.oneof(fc.constantFrom('openai/models', 'echo/api', ''), fc.string({ maxLength: 300 })),
      credential: fc.string({ maxLength: 20 }),
      request: requestArb,
      extra: fc.anything(),
    },
    { requiredKeys: ['capability', 'request'] },
  ),
  fc.anything(),
);
const frameValueArb = fc.oneof(
  fc.record(
    {
      v: fc.oneof(fc.constant(1), fc.integer()),
      type: fc.constantFrom(
        'invoke',
        'cancel',
        'ping',
        'unlock',
        'lock',
        'status',
        'response',
        'head',
        'chunk',
        'end',
        'error',
        'pong',
        'result',
        'x',
      ),
      id: fc.oneof(fc.integer(), fc.double(), fc.string(), fc.constant(Number.MAX_SAFE_INTEGER + 2)),
      envelope: envelopeArb,
      context: fc.dictionary(
        fc.constantFrom('workspaceId', 'groupId', 'clientIp', 'consumer', 'token'),
        fc.anything(),
      ),
      stream: fc.anything(),
      timeoutMs: fc.oneof(fc.integer(), fc.double()),
      passphrase: fc.string(),
      status: fc.integer(),
      headers: fc.anything(),
      body: fc.uint8Array({ maxLength: 16 }),
      data: fc.anything(),
      error: fc.string(),
      message: fc.string(),
    },
    { requiredKeys: [] },
  ),
  fc.anything(),
);

const routeArb = fc.tuple(
  fc.oneof(
    fc
      .tuple(fc.constantFrom('/v/', '/v//', '/v', '/x/'), fc.string({ maxLength: 16 }), pathArb)
      .map((t) => t.join('')),
    fc
      .tuple(fc.constantFrom('/v/'), fc.stringMatching(/^[a-z0-9%._-]{0,12}$/), pathArb)
      .map((t) => t.join('')),
    fc.string({ maxLength: 64 }),
  ),
  fc.oneof(
    fc.constantFrom('', ' ', 'Bearer', 'Bearer ', 'bearer abc', 'Basic abc', 'Bearer a b', 'Bearer\tx'),
    fc.string({ maxLength: 40 }).map((x) => `Bearer ${x}`),
    fc.string({ maxLength: 40 }),
  ),
  fc.oneof(fc.constantFrom('', ' ', 'sk-abc'), fc.string({ maxLength: 40 })),
);

// broker.json documents near the schema: registry and custom records naming registry providers, with
// hosts an attacker would try (the provider's own, a collector, wildcards, tenant hosts, look-alikes).
const hostPool = fc.constantFrom(
  'api.openai.com',
  'evil.test',
  '*.evil.test',
  'api.openai.com.evil.test',
  '*.myshopify.com',
  'shop.myshopify.com',
  'a.b.myshopify.com',
  '*.zendesk.com',
  'acme.zendesk.com',
  'API.OPENAI.COM',
  'api.openai.com:8443',
);
const storedCredentialArb = fc.record(
  {
    id: fc.constantFrom('openai', 'shop', 'zd', 'x'),
    provider: fc.constantFrom('openai', 'shopify', 'zendesk', 'acme', 'supabase'),
    source: fc.constantFrom('registry', 'custom', 'registry', 'custom', 'other'),
    secretRefs: fc.oneof(
      fc.constant({ secret: 'vault:secret:s1' }),
      fc.constant({ email: 'vault:secret:e', api_token: 'vault:secret:t' }),
      fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.string({ minLength: 1, maxLength: 8 })),
    ),
    auth: fc.oneof(
      {
        arbitrary: fc.constant({
          header: { header_name: 'authorization', value_template: 'Bearer {{secret}}' },
        }),
        weight: 3,
      },
      { arbitrary: fc.constant({ query: { param_name: 'key' } }), weight: 2 },
      { arbitrary: fc.anything({ maxDepth: 2 }), weight: 1 },
    ),
    hosts: fc.array(hostPool, { maxLength: 3 }),
    params: fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }), fc.string({ maxLength: 6 })),
    createdAtMs: fc.oneof({ arbitrary: fc.nat(), weight: 4 }, { arbitrary: fc.integer(), weight: 1 }),
  },
  { requiredKeys: ['id', 'provider', 'source', 'secretRefs', 'createdAtMs'] },
);
const storedCapabilityArb = fc.record(
  {
    id: fc.constantFrom('openai/chat-completions', 'openai/models', 'shopify/admin-graphql', 'acme/api'),
    provider: fc.constantFrom('openai', 'shopify', 'acme'),
    credentialId: fc.constantFrom('openai', 'shop', 'x'),
    allow: fc.record({
      hosts: fc.array(hostPool, { minLength: 1, maxLength: 2 }),
      methods: fc.array(fc.constantFrom('GET', 'POST', 'PUT', 'TRACE'), { minLength: 1, maxLength: 2 }),
      pathPrefixes: fc.array(fc.constantFrom('/', '/v1', '/v1/../admin', '/%2e%2e'), {
        minLength: 1,
        maxLength: 2,
      }),
    }),
  },
  { requiredKeys: ['id', 'provider', 'credentialId', 'allow'] },
);
const brokerFileArb = fc.oneof(
  fc.record({
    version: fc.constantFrom(1, 1, 1, 2),
    credentials: fc.uniqueArray(storedCredentialArb, { maxLength: 3, selector: (c) => c.id }),
    capabilities: fc.uniqueArray(storedCapabilityArb, { maxLength: 2, selector: (c) => c.id }),
    policies: fc.constant([]),
  }),
  fc.anything(),
);

describe(`fuzz (fast-check, ${SECONDS}s per target)`, () => {
  it('msgpack frame decoder: raw bytes', { timeout: TIMEOUT }, () => {
    expect(run(fc.uint8Array({ maxLength: 256 }), fuzzFrame)).toBeGreaterThan(100);
  });
  it('msgpack frame decoder: structured frames', { timeout: TIMEOUT }, () => {
    expect(run(frameValueArb, fuzzFrameValue)).toBeGreaterThan(100);
  });
  it('envelope parser', { timeout: TIMEOUT }, () => {
    expect(run(envelopeArb, fuzzEnvelope)).toBeGreaterThan(100);
  });
  it('path normalizer', { timeout: TIMEOUT }, () => {
    expect(run(pathArb, (p) => fuzzPath(p))).toBeGreaterThan(100);
  });
  it('host matcher', { timeout: TIMEOUT }, () => {
    expect(
      run(fc.oneof(fc.tuple(patternArb, hostArb), nearPairArb), ([p, h]) => fuzzHost(p, h)),
    ).toBeGreaterThan(100);
  });
  it('HTTP routes: passthrough split and token extraction', { timeout: TIMEOUT }, () => {
    expect(run(routeArb, ([u, a, k]) => fuzzRoute(u, a, k))).toBeGreaterThan(100);
  });
  it('broker.json loader: tampered files never widen policy', { timeout: TIMEOUT }, () => {
    let accepted = 0;
    let withCredentials = 0;
    const n = run(brokerFileArb, (doc) => {
      if (!fuzzBrokerFile(doc)) return;
      accepted++;
      if ((doc as { credentials?: unknown[] }).credentials?.length) withCredentials++;
    });
    process.stdout.write(`fuzz: broker.json ${accepted} accepted, ${withCredentials} with credentials\n`);
    expect(n).toBeGreaterThan(100);
    expect(withCredentials, 'the generator must reach files the schema accepts').toBeGreaterThan(10);
  });
});

/**
 * Micro-benchmarks (tinybench), each next to a baseline measured in the same run:
 *   policy check        checkRequest on the bench vault's real catalog   vs JSON.parse of the envelope
 *   envelope decode     decodeClientFrame (msgpack + strict validation)  vs bare msgpack unpack
 *   rate-limit admit    RateLimiter.tryAcquire, 1 thread and 2 threads contending on one SharedArrayBuffer
 *   secret decrypt      crypto worker round trip (MessagePort RPC)      vs in-thread CryptoService.decrypt
 *                                                                       vs an empty MessagePort echo
 *   auth rendering      every strategy's per-request closure (registry providers + hmac/mtls by hand)
 *   reflected-secret scrub  a 1 KiB reply (cached matcher, as on a warm call)      vs copying the reply
 *                       compiling the matcher (a call with new secret values), and a 100 MiB streamed
 *                       body in 64 KiB chunks (16 MiB with --quick), reported as MB/s
 * Run by bench/run.ts with BENCH_VAULT_DIR (a dev vault holding OPENAI_API_KEY); standalone it creates
 * its own throwaway vault. Prints one JSON array line on stdout (human lines on stderr).
 */
import { MessageChannel, Worker } from 'node:worker_threads';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { unpack } from 'msgpackr';
import { Bench } from 'tinybench';
import type { AuthSpec } from '../src/core/registry/types.js';
import { useBenchVault } from './support/bench-vault.js';
import type { MicroRow } from './support/report.js';

const ROOT = resolve(import.meta.dirname, '..');
const QUICK = process.argv.includes('--quick');
const TIME = QUICK ? 150 : 500;

useBenchVault('micro', process.env.BENCH_VAULT_DIR);

// Imported after AIVAULT_DIR is set (loadConfig reads the environment).
const { loadConfig } = await import('../src/core/config/env.js');
const { vaultPaths } = await import('../src/stores/vault/index.js');
const { registry } = await import('../src/core/registry/index.js');
const { createCatalogCache } = await import('../src/stores/catalog/cache.js');
const { checkRequest } = await import('../src/core/broker/policy.js');
const { encodeFrame, decodeClientFrame } = await import('../src/core/protocol/frames.js');
const { RateLimiter, createRateLimitBuffer } = await import('../src/core/threads/rate-limit.js');
const { CryptoService } = await import('../src/crypto-worker/crypto-service.js');
const { SecretCache, cachedDecrypt } = await import('../src/request-worker/secret-cache.js');
const { Generation } = await import('../src/core/threads/generation.js');
const { toWorkerConfig } = await import('../src/core/threads/crypto-protocol.js');
const { CryptoPortClient } = await import('../src/request-worker/crypto-client.js');
const { workerEntry } = await import('../src/pool/worker-files.js');
const { createAuth, SecretValues } = await import('../src/request-worker/auth/index.js');

type Row = MicroRow;
const rows: Row[] = [];

async function group(tasks: [string, () => unknown][], baselineName?: string): Promise<void> {
  const bench = new Bench({ time: TIME, warmupTime: QUICK ? 50 : 150 });
  for (const [n, fn] of tasks) bench.add(n, fn);
  await bench.warmup();
  await bench.run();
  const base = bench.tasks.find((t) => t.name === baselineName)?.result;
  for (const t of bench.tasks) {
    const r = t.result;
    if (!r) continue;
    if (r.error) {
      rows.push({
        name: t.name,
        opsPerSec: 0,
        usPerOp: 0,
        note: `error: ${String((r.error as Error).message ?? r.error).slice(0, 80)}`,
      });
      continue;
    }
    const row: Row = { name: t.name, opsPerSec: r.hz, usPerOp: r.mean * 1000, p99us: r.p99 * 1000 };
    if (base && t.name !== baselineName) {
      row.baseline = baselineName;
      row.ratio = r.mean / base.mean;
    }
    rows.push(row);
    process.stderr.write(
      `${t.name.padEnd(48)} ${Math.round(r.hz).toLocaleString('en-US').padStart(12)} ops/s  ${(r.mean * 1000).toFixed(3)} µs/op\n`,
    );
  }
}

const config = loadConfig();
const paths = vaultPaths(config);

// 1. policy check on the real catalog
{
  const snapshot = await createCatalogCache(paths, registry)();
  const text = JSON.stringify({
    capability: 'openai/chat-completions',
    request: {
      method: 'POST',
      path: '/v1/chat/completions',
      headers: [
        ['content-type', 'application/json'],
        ['accept', 'application/json'],
      ],
      body: '{"model":"gpt-bench","messages":[{"role":"user","content":"hi"}]}',
    },
  });
  const envelope: unknown = JSON.parse(text);
  const ok = checkRequest({ envelope, context: {}, snapshot, registry });
  if (!ok.ok) throw ok.error;
  await group(
    [
      ['JSON.parse(envelope) [baseline]', () => JSON.parse(text)],
      ['policy check: checkRequest', () => checkRequest({ envelope, context: {}, snapshot, registry })],
    ],
    'JSON.parse(envelope) [baseline]',
  );
}

// 2. envelope decode
{
  const bytes = encodeFrame({
    type: 'invoke',
    id: 42,
    envelope: {
      capability: 'openai/chat-completions',
      request: {
        method: 'POST',
        path: '/v1/chat/completions',
        headers: [['content-type', 'application/json']],
        body: '{"model":"gpt-bench","messages":[{"role":"user","content":"hi"}]}',
      },
    },
    context: {},
    stream: false,
  } as Parameters<typeof encodeFrame>[0]);
  if (!decodeClientFrame(bytes).ok) throw new Error('frame does not decode');
  await group(
    [
      ['msgpack unpack [baseline]', () => unpack(bytes)],
      ['envelope decode: decodeClientFrame', () => decodeClientFrame(bytes)],
    ],
    'msgpack unpack [baseline]',
  );
}

// 3. rate-limit admit: one thread, then two threads contending on the same SharedArrayBuffer slot
{
  const limiter = new RateLimiter(createRateLimitBuffer());
  await group([
    ['rate-limit admit: tryAcquire (1 thread)', () => limiter.tryAcquire('bench/cap', 4_000_000_000)],
  ]);
  const buf = createRateLimitBuffer();
  const N = QUICK ? 300_000 : 2_000_000;
  const file = join(mkdtempSync(join(tmpdir(), 'aivault-rl-')), 'rl.mjs');
  const modUrl = pathToFileURL(join(ROOT, 'dist', 'src', 'core', 'threads', 'rate-limit.js')).href;
  writeFileSync(
    file,
    `import { workerData, parentPort } from 'node:worker_threads';
import { RateLimiter } from ${JSON.stringify(modUrl)};
const l = new RateLimiter(workerData.buf);
for (let i = 0; i < 20000; i++) l.tryAcquire('warm/cap', 4e9);
const gate = new Int32Array(workerData.gate);
Atomics.add(gate, 0, 1);
while (Atomics.load(gate, 0) < workerData.k) {} // start together: the threads really contend
const t0 = performance.now();
let admitted = 0;
for (let i = 0; i < workerData.n; i++) if (l.tryAcquire('bench/shared', 4e9).admitted) admitted++;
parentPort.postMessage({ ms: performance.now() - t0, admitted });`,
  );
  const runThreads = async (k: number): Promise<{ ms: number; admitted: number }> => {
    const gate = new SharedArrayBuffer(4);
    const res = await Promise.all(
      Array.from(
        { length: k },
        () =>
          new Promise<{ ms: number; admitted: number }>((res, rej) => {
            const w = new Worker(file, { workerData: { buf, n: N, gate, k } });
            w.once('message', (m: { ms: number; admitted: number }) => (res(m), void w.terminate()));
            w.once('error', rej);
          }),
      ),
    );
    return { ms: Math.max(...res.map((r) => r.ms)), admitted: res.reduce((a, r) => a + r.admitted, 0) };
  };
  const one = await runThreads(1);
  const two = await runThreads(2);
  const opsOne = (N / one.ms) * 1000;
  const opsTwo = ((2 * N) / two.ms) * 1000;
  rows.push({ name: 'rate-limit admit: 1 worker thread', opsPerSec: opsOne, usPerOp: 1e6 / opsOne });
  rows.push({
    name: 'rate-limit admit: 2 worker threads, one slot (aggregate)',
    opsPerSec: opsTwo,
    usPerOp: 1e6 / opsTwo,
    baseline: '1 thread',
    ratio: opsOne / opsTwo,
    note: `${two.admitted === 2 * N ? 'every call admitted, none lost' : `admitted ${two.admitted} of ${2 * N}`}; ratio = time/op vs 1 thread`,
  });
  process.stderr.write(
    `rate-limit: 1 thread ${Math.round(opsOne)} ops/s, 2 threads ${Math.round(opsTwo)} ops/s aggregate\n`,
  );
}

// 4. secret decrypt: crypto worker round trip vs in-thread vs an empty MessagePort echo
{
  const ids = readdirSync(paths.secretsDir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => f.slice(0, -5));
  const id = ids[0] as string;
  const service = new CryptoService(config);
  await service.decrypt([id]);
  const entry = workerEntry('crypto-worker');
  const worker = new Worker(entry.filename, {
    workerData: { ...entry.bootData, config: toWorkerConfig(config) },
  });
  const ch = new MessageChannel();
  worker.postMessage({ op: 'attach', port: ch.port2 }, [ch.port2]);
  const client = new CryptoPortClient(ch.port1);
  await client.decrypt([id]);
  // What a warm call pays: the request worker's own cache (secure memory), no round trip.
  const generation = new Generation();
  const cache = new SecretCache(generation);
  const warmDecrypt = cachedDecrypt(cache, generation, (ids) => client.decrypt(ids));
  await warmDecrypt([id]);
  const echo = new MessageChannel();
  echo.port2.on('message', (m: number) => echo.port2.postMessage(m));
  let waiting: (() => void) | undefined;
  echo.port1.on('message', () => waiting?.());
  const echoRoundTrip = (): Promise<void> =>
    new Promise<void>((r) => {
      waiting = r;
      echo.port1.postMessage(1);
    });
  await group(
    [
      ['MessagePort echo round trip [floor]', echoRoundTrip],
      ['secret: warm call (request worker cache hit)', () => warmDecrypt([id])],
      ['secret decrypt: in-thread CryptoService', () => service.decrypt([id])],
      ['secret decrypt: crypto worker round trip', () => client.decrypt([id])],
      ['crypto worker `dev` check round trip', () => client.dev()],
    ],
    'MessagePort echo round trip [floor]',
  );
  rows.push({
    name: 'note',
    opsPerSec: 0,
    usPerOp: 0,
    note: 'a warm call pays only the cache hit (no crypto worker round trip, no file read); a decrypt round trip is paid on first use of a secret, after a vault change (generation bump) and after 5 minutes; `dev` only with AIVAULT_DEV_* overrides',
  });
  echo.port1.close();
  echo.port2.close();
  ch.port1.close();
  await worker.terminate();
  service.dispose();
  cache.clear();
}

// 5. auth rendering per strategy
{
  const input = {
    method: 'POST',
    host: 'api.example.com',
    path: '/v1/things',
    query: 'a=1',
    headers: [['content-type', 'application/json']] as const,
    body: new TextEncoder().encode('{"model":"gpt-bench"}'),
  };
  const pick = (type: string): { spec: AuthSpec; slots: string[] } | undefined => {
    const p = registry.providers.find((x) => Object.keys(x.auth)[0] === type);
    return p ? { spec: p.auth, slots: [...new Set(Object.values(p.vaultSecrets))] } : undefined;
  };
  const cases: [string, { spec: AuthSpec; slots: string[] } | undefined, Record<string, string>?][] = [
    ['header', pick('header')],
    ['query', pick('query')],
    ['path', pick('path')],
    ['basic', pick('basic')],
    ['multi_header', pick('multi_header')],
    ['multi_query', pick('multi_query')],
    [
      'aws_sigv4',
      pick('aws_sigv4'),
      {
        aws: JSON.stringify({
          access_key_id: 'AKIDEXAMPLE',
          secret_access_key: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
        }),
      },
    ],
    [
      'hmac',
      {
        spec: {
          hmac: {
            algorithm: 'sha256',
            header_name: 'x-signature',
            value_template: 't={{timestamp}},v1={{signature}}',
          },
        } as AuthSpec,
        slots: ['secret'],
      },
    ],
  ];
  const tasks: [string, () => unknown][] = [];
  for (const [name, c, explicit] of cases) {
    if (!c) continue;
    const made = createAuth(c.spec, {});
    if (!made.ok) {
      rows.push({
        name: `auth rendering: ${name}`,
        opsPerSec: 0,
        usPerOp: 0,
        note: `createAuth failed: ${made.error.message}`,
      });
      continue;
    }
    const bySlot: Record<string, string> =
      explicit ?? Object.fromEntries(c.slots.map((s) => [s, `secret-value-for-${s}-0123456789`]));
    const apply = made.value;
    const probe = await apply(input, SecretValues.from(bySlot));
    if (!probe.ok) {
      rows.push({
        name: `auth rendering: ${name}`,
        opsPerSec: 0,
        usPerOp: 0,
        note: `apply failed: ${probe.error.message}`,
      });
      continue;
    }
    tasks.push([`auth rendering: ${name}`, () => apply(input, SecretValues.from(bySlot))]);
  }
  await group(tasks);
}

// 6. reflected-secret scrubbing (src/request-worker/pipeline/scrub.ts): the per-call cost every response now pays
{
  const { scrubSecretsOf } = await import('../src/request-worker/pipeline/scrub-call.js');
  const { scrubberFor } = await import('../src/request-worker/pipeline/scrubber-cache.js');
  const { createScrubber } = await import('../src/request-worker/pipeline/scrub.js');
  const key = 'sk-proj-bench0123456789abcdefghijklmnopqrstuvwxyzABCDEF';
  const secrets = scrubSecretsOf(
    { auth: { header: {} } as AuthSpec, secretNames: { secret: 'OPENAI_API_KEY' } },
    [{ secret: key }],
  );
  const reply = Buffer.from(JSON.stringify({ id: 'chatcmpl-1', text: 'x'.repeat(960) }).slice(0, 1024));
  await group(
    [
      ['reply copy 1 KiB (baseline)', () => Buffer.from(reply)],
      ['scrub 1 KiB reply (cached matcher)', () => scrubberFor(secrets).scrub(reply)],
      ['scrub: compile matcher (new secret values)', () => createScrubber(secrets)],
    ],
    'reply copy 1 KiB (baseline)',
  );
  const total = (QUICK ? 16 : 100) << 20;
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  const matcher = scrubberFor(secrets);
  const t0 = process.hrtime.bigint();
  const stream = matcher.stream();
  let out = 0;
  for (let sent = 0; sent < total; sent += chunk.byteLength) out += stream.push(chunk).byteLength;
  out += stream.end().byteLength;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const mbPerSec = total / (1 << 20) / secs;
  rows.push({
    name: `scrub ${total >> 20} MiB streamed body (64 KiB chunks)`,
    opsPerSec: 1 / secs,
    usPerOp: secs * 1e6,
    note: `${mbPerSec.toFixed(0)} MB/s, ${out === total ? 'output intact' : 'OUTPUT SIZE MISMATCH'}`,
  });
  process.stderr.write(
    `scrub ${total >> 20} MiB streamed body                    ${mbPerSec.toFixed(0)} MB/s\n`,
  );
}

process.stdout.write(`${JSON.stringify(rows)}\n`);
process.exit(0);

/**
 * Attack: make the upstream hand the key back. The agent picks a capability whose host reflects what it
 * receives (error pages quoting the Authorization header, debug/echo endpoints) and reads the key from the
 * answer: in the body (raw, base64, base64url, hex, percent-encoded, JSON-escaped), in a response header,
 * in an error body, split across two SSE writes, or in WebSocket messages. Tried through the CLI
 * (in-process and daemon), the socket, POST /aivault/proxy, /v/… and /aivault/ws.
 * Stopped by: the request worker scrubs every response path of the values injected into the call
 * (src/request-worker/pipeline/scrub.ts), streaming-safe, and audits `response.scrubbed` (count and kinds, no value).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { headerCredentialArgs, registerSecret } from '../support/run-cli.js';
import { attackerSocket, startAttackEnv, type AttackEnv } from './support/attack-env.js';
import {
  REFLECT_HOST,
  reflectForms,
  startReflectUpstream,
  type ReflectUpstream,
} from './support/reflect-upstream.js';

const REDACTED = '[redacted:REFLECT_KEY]';
let a: AttackEnv;
let up: ReflectUpstream;
let key = '';
let token = '';
let base = '';

/** Fails naming the form if `text` holds any encoding of the key. */
function expectNoKey(text: string, where: string): void {
  for (const [name, form] of Object.entries(reflectForms(key))) {
    expect(text.includes(form), `${name} form of the key in ${where}`).toBe(false);
  }
}

/** Autostart the daemon (with its HTTP listener) and read where it listens now. */
async function daemonHttpBase(): Promise<string> {
  const warm = await a.cli(['invoke', 'reflect/api', '--path', '/r/header']);
  expect(warm.code, warm.stderr).toBe(0);
  const info = JSON.parse(readFileSync(join(a.vaultDir, 'run', 'aivaultd.http.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  return typeof info.url === 'string'
    ? info.url.replace(/\/$/, '')
    : `http://${String(info.host ?? '127.0.0.1')}:${String(info.port)}`;
}

beforeAll(async () => {
  up = await startReflectUpstream();
  a = await startAttackEnv({
    extraEnv: { AIVAULTD_HTTP: '127.0.0.1:0' },
    extraResolve: { [REFLECT_HOST]: up.port },
  });
  // Characters that make every encoding differ from the raw value: + / = " \.
  key = registerSecret(`rk-${Math.random().toString(36).slice(2, 12)}+/=Zq"9\\x${Date.now().toString(36)}`);
  const s = await a.cli(['-v', 'secrets', 'create', '--name', 'REFLECT_KEY', '--value-stdin'], {}, key);
  expect(s.code, s.stderr).toBe(0);
  const id = (JSON.parse(s.stdout) as { secret: { id: string } }).secret.id;
  const c = await a.cli(
    headerCredentialArgs({ id: 'reflect', secretRef: `vault:secret:${id}`, host: REFLECT_HOST }),
  );
  expect(c.code, c.stderr).toBe(0);
  const cap = await a.cli([
    'capability',
    'create',
    'reflect/api',
    '--credential',
    'reflect',
    '--method',
    'GET',
    '--path',
    '/r',
  ]);
  expect(cap.code, cap.stderr).toBe(0);
  const m = await a.cli(['-v', 'token', 'mint', '--capability', 'reflect/api', '--ttl', '15m']);
  expect(m.code, m.stderr).toBe(0);
  token = registerSecret((JSON.parse(m.stdout) as { token: string }).token);
  base = await daemonHttpBase();
}, 120_000);
afterAll(async () => {
  await a?.close();
  await up?.close();
});

const FORMS = ['raw', 'base64', 'base64url', 'hex', 'HEX', 'percent', 'json'];

describe.each([
  ['in-process (AIVAULTD_DISABLE=1)', { AIVAULTD_DISABLE: '1' }],
  ['through aivaultd', {}],
])('attack through the CLI, %s', (_mode, extra: Record<string, string>) => {
  it.each(FORMS)('%s form in the body is replaced, the rest arrives intact, stderr warns', async (form) => {
    const r = await a.cli(['invoke', 'reflect/api', '--path', `/r/body?form=${form}`], extra);
    expect(r.code, r.stderr).toBe(0);
    expectNoKey(r.stdout + r.stderr, `CLI output (${form})`);
    expect(r.stdout).toBe(`before|${REDACTED}|after`);
    expect(r.stderr).toMatch(/reflected a secret; 1 occurrence/);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('error body quoting the key (and -v JSON output)', async () => {
    const r = await a.cli(['-v', 'invoke', 'reflect/api', '--path', '/r/error'], extra);
    expect(r.code).toBe(1);
    expectNoKey(r.stdout + r.stderr, 'CLI error output');
    expect(r.stdout).toContain(`invalid api key ${REDACTED}`);
    expect(r.stdout).toContain('rotate it');
  });
});

describe('attack through the daemon socket (streaming)', () => {
  it('SSE: events before the reflected one arrive without waiting; the split key is replaced', async () => {
    const c = await attackerSocket(a);
    try {
      const call = c.stream({ capability: 'reflect/api', request: { method: 'GET', path: '/r/sse' } });
      let text = '';
      let secondWrittenWhenFirstSeen: boolean | undefined;
      for await (const chunk of call.body) {
        text += Buffer.from(chunk).toString('utf8');
        if (secondWrittenWhenFirstSeen === undefined && text.includes('data: first\n\n')) {
          secondWrittenWhenFirstSeen = up.sse.secondWritten;
          up.sse.open();
        }
      }
      expect(secondWrittenWhenFirstSeen).toBe(false);
      expectNoKey(text, 'socket SSE stream');
      expect(text).toBe(`data: first\n\ndata: token=${REDACTED}\n\ndata: last\n\n`);
      expect(call.scrubbed()).toBe(1);
    } finally {
      c.close();
    }
  });

  it('CLI --stream prints the scrubbed SSE stream and warns', async () => {
    // The CLI cannot report when it saw the first event; keep the gate open so the test does not wait.
    const opener = setInterval(() => up.sse.open(), 100);
    const r = await a
      .cli(['invoke', 'reflect/api', '--path', '/r/sse', '--stream'])
      .finally(() => clearInterval(opener));
    expect(r.code, r.stderr).toBe(0);
    expectNoKey(r.stdout + r.stderr, 'CLI --stream output');
    expect(r.stdout).toBe(`data: first\n\ndata: token=${REDACTED}\n\ndata: last\n\n`);
    expect(r.stderr).toMatch(/reflected a secret/);
  });

  it('response headers reflecting the key are scrubbed', async () => {
    const c = await attackerSocket(a);
    try {
      const res = await c.invoke({
        capability: 'reflect/api',
        request: { method: 'GET', path: '/r/header' },
      });
      const headers = new Map(res.headers);
      expectNoKey(JSON.stringify(res.headers), 'socket response headers');
      expect(headers.get('x-echo')).toBe(REDACTED);
      expect(headers.get('x-echo-b64')).toBe(REDACTED);
      expect(Buffer.from(res.body).toString('utf8')).toBe('header-ok');
      expect(res.scrubbed).toBe(2);
    } finally {
      c.close();
    }
  });
});

describe('attack through the loopback HTTP routes', () => {
  // The in-process runs above stopped the daemon (in-process calls are refused while it serves the
  // vault); the next one listens on a new port.
  beforeAll(async () => {
    base = await daemonHttpBase();
  });
  const auth = (): Record<string, string> => ({ authorization: `Bearer ${token}` });

  async function proxy(path: string): Promise<Response> {
    return fetch(`${base}/aivault/proxy`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: JSON.stringify({ capability: 'reflect/api', request: { method: 'GET', path } }),
    });
  }

  it.each(FORMS)('POST /aivault/proxy and /v/…: %s form in the body', async (form) => {
    for (const res of [
      await proxy(`/r/body?form=${form}`),
      await fetch(`${base}/v/reflect/r/body?form=${form}`, { headers: auth() }),
    ]) {
      const text = await res.text();
      expectNoKey(text + JSON.stringify([...res.headers]), `HTTP answer (${form})`);
      expect(text).toBe(`before|${REDACTED}|after`);
    }
  });

  it('headers and error bodies, on both routes', async () => {
    for (const res of [
      await proxy('/r/header'),
      await fetch(`${base}/v/reflect/r/header`, { headers: auth() }),
    ]) {
      expectNoKey(JSON.stringify([...res.headers]), 'HTTP response headers');
      expect(res.headers.get('x-echo')).toBe(REDACTED);
      expect(await res.text()).toBe('header-ok');
    }
    for (const res of [
      await proxy('/r/error'),
      await fetch(`${base}/v/reflect/r/error`, { headers: auth() }),
    ]) {
      expect(res.status).toBe(401);
      const text = await res.text();
      expectNoKey(text, 'HTTP error body');
      expect(JSON.parse(text)).toEqual({ error: `invalid api key ${REDACTED}`, hint: 'rotate it' });
    }
  });

  it.each(['proxy', 'passthrough'])(
    'SSE over %s: the first event arrives before the key is complete',
    async (route) => {
      const res =
        route === 'proxy'
          ? await proxy('/r/sse')
          : await fetch(`${base}/v/reflect/r/sse`, { headers: auth() });
      const reader = res.body!.getReader();
      let text = '';
      let secondWrittenWhenFirstSeen: boolean | undefined;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        text += Buffer.from(value).toString('utf8');
        if (secondWrittenWhenFirstSeen === undefined && text.includes('data: first\n\n')) {
          secondWrittenWhenFirstSeen = up.sse.secondWritten;
          up.sse.open();
        }
      }
      expect(secondWrittenWhenFirstSeen).toBe(false);
      expectNoKey(text, `${route} SSE`);
      expect(text).toBe(`data: first\n\ndata: token=${REDACTED}\n\ndata: last\n\n`);
    },
  );

  it('WebSocket relay: upstream messages and the close reason are scrubbed', async () => {
    const port = new URL(base).port;
    const ws = new WebSocket(`ws://127.0.0.1:${port}/aivault/ws`, {
      headers: auth(),
      perMessageDeflate: false,
    });
    const frames: string[] = [];
    const closed = new Promise<{ code: number; reason: string }>((resolve, reject) => {
      ws.on('open', () => ws.send(JSON.stringify({ capability: 'reflect/api', path: '/r/ws' })));
      ws.on('message', (data) => frames.push(Buffer.from(data as Buffer).toString('utf8')));
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString('utf8') }));
      ws.on('error', reject);
    });
    const close = await closed;
    expectNoKey(frames.join('\n') + close.reason, 'WebSocket relay');
    const expected = [...Object.keys(reflectForms(key)).map((n) => `${n}:${REDACTED}`), `bin:${REDACTED}`];
    expect(frames).toEqual(expected);
    expect(close.reason).toBe(`bye ${REDACTED}`);
  });
});

describe('audit', () => {
  it('each scrubbed response wrote response.scrubbed with count and kinds, never the value', () => {
    const dir = join(a.vaultDir, 'audit');
    const lines = readdirSync(dir)
      .filter((f) => f.endsWith('.jsonl'))
      .flatMap((f) => readFileSync(join(dir, f), 'utf8').split('\n'))
      .filter(Boolean);
    expectNoKey(lines.join('\n'), 'audit log');
    const scrubbed = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((e) => e.kind === 'response.scrubbed');
    expect(scrubbed.length).toBeGreaterThan(10);
    for (const e of scrubbed) {
      expect(e.capability).toBe('reflect/api');
      expect(e.count).toBeGreaterThan(0);
      expect(String(e.encodings)).toMatch(/^[a-z0-9,]+$/);
    }
    const kinds = new Set(scrubbed.flatMap((e) => String(e.encodings).split(',')));
    // base64url is reported as base64 when both spell the key the same (no + or / in it).
    for (const k of ['raw', 'base64', 'hex', 'percent', 'json']) expect(kinds).toContain(k);
  });
  it('aivault audit verify: every writer (daemon threads, in-process CLIs) chained; an edit is named', async () => {
    const ok = await a.cli(['audit', 'verify']);
    expect(ok.code, ok.stderr + ok.stdout).toBe(0);
    expect(ok.stdout).toMatch(/^\d+ events verified/);
    // The attacker rewrites what a scrubbed event says (no key: the seal cannot be recomputed).
    const dir = join(a.vaultDir, 'audit');
    const file = readdirSync(dir)
      .filter((f) => f.endsWith('.jsonl'))
      .sort()
      .at(-1)!;
    const ls = readFileSync(join(dir, file), 'utf8').split('\n');
    const i = ls.findIndex((l) => l.includes('"response.scrubbed"'));
    ls[i] = ls[i]!.replace('"response.scrubbed"', '"invoke"');
    writeFileSync(join(dir, file), ls.join('\n'));
    const bad = await a.cli(['audit', 'verify']);
    expect(bad.code).toBe(1);
    expect(bad.stdout + bad.stderr).toContain(`${file}:${i + 1}:`);
  });
});

/**
 * Issue 19 finding 5 (streams and tokens): a caller starts a long HTTP stream (an SSE answer through
 * `POST /aivault/proxy` or `/v/{credential}/…`) with a short-lived proxy token, or one the operator then
 * revokes, and keeps reading after the token is dead. Stopped by: open HTTP streams are re-checked with the
 * WebSocket relays (src/front/http/proxy-tokens.ts `recheckTokens`) and cut when their token expires or is
 * revoked; the cut is audited.
 */
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerSecret } from '../support/run-cli.js';
import { startHttpAttackEnv, type AttackEnv } from './support/attack-env.js';

/** 200 events 100 ms apart: a 20 s stream, so any cut within a few seconds is the daemon's. */
const SSE_PATH = '/v1/models/sse?n=200&interval=100';
let a: AttackEnv;
let port = 0;

beforeAll(async () => {
  ({ env: a, port } = await startHttpAttackEnv());
}, 120_000);
afterAll(() => a?.close());

async function mint(ttl: string): Promise<{ token: string; id: string }> {
  const m = await a.cli(['-v', 'token', 'mint', '--capability', 'openai/*', '--ttl', ttl]);
  expect(m.code, m.stderr).toBe(0);
  const t = JSON.parse(m.stdout) as { token: string; id: string };
  registerSecret(t.token);
  return t;
}

interface StreamOutcome {
  status: number;
  events: number;
  /** True when the body ended cleanly (all of it arrived); false when the connection was cut. */
  complete: boolean;
}

/** The attacker's reader: start the stream, call `during` once the first event arrived, read to the end. */
function readStream(
  path: string,
  method: string,
  token: string,
  body: string | undefined,
  during: () => Promise<void>,
): Promise<StreamOutcome> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
      },
      (res) => {
        let text = '';
        let started = false;
        const finish = (): void =>
          resolve({
            status: res.statusCode ?? 0,
            events: (text.match(/^data: /gm) ?? []).length,
            complete: res.complete,
          });
        res.on('data', (d: Buffer) => {
          text += d.toString();
          if (!started && text.includes('data: ')) {
            started = true;
            during().catch(reject);
          }
        });
        res.on('end', finish);
        res.on('error', finish);
        res.on('aborted', finish);
      },
    );
    req.on('error', reject);
    req.setTimeout(60_000, () => req.destroy(new Error('no answer')));
    req.end(body);
  });
}

/** The daemon cut the stream: some events arrived, far from all of them, and the body did not end cleanly. */
function expectCut(o: StreamOutcome): void {
  expect(o.status).toBe(200);
  expect(o.events).toBeGreaterThan(0);
  expect(o.events).toBeLessThan(200);
  expect(o.complete).toBe(false);
}

const proxyBody = JSON.stringify({ capability: 'openai/models', request: { method: 'GET', path: SSE_PATH } });

describe('attack: keep an HTTP stream after its token expired or was revoked', () => {
  it('POST /aivault/proxy: revoking the token cuts the open SSE stream', async () => {
    const t = await mint('15m');
    const o = await readStream('/aivault/proxy', 'POST', t.token, proxyBody, async () => {
      const r = await a.cli(['token', 'revoke', t.id]);
      expect(r.code, r.stderr).toBe(0);
    });
    expectCut(o);
  }, 60_000);

  it('/v/{credential}/… passthrough: the stream is cut once the token expires', async () => {
    const t = await mint('4s');
    const o = await readStream(`/v/openai${SSE_PATH}`, 'GET', t.token, undefined, async () => undefined);
    expectCut(o);
  }, 60_000);

  it('the cuts are audited', async () => {
    const r = await a.cli(['-v', 'audit', '--limit', '50']);
    const events = JSON.parse(r.stdout) as { kind: string; path?: string; note?: string }[];
    const cuts = events.filter((e) => e.note === 'stream closed: token expired or revoked');
    expect(cuts.map((e) => e.path).sort()).toEqual(['/aivault/proxy', '/v/']);
  });
});

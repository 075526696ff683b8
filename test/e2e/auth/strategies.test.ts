/**
 * One end-to-end call per auth strategy THROUGH THE DAEMON (real request workers + crypto worker, dev vault,
 * AIVAULT_DEV_RESOLVE to a local HTTPS mock), asserting exactly what the upstream received, and that no auth
 * value ever reaches an audit line or an error message. oauth2 has its own file (oauth2-lifecycle.test.ts).
 */
import { NodeSha256 } from '../../../src/request-worker/auth/aws-sigv4.js';
import { createHash, createHmac } from 'node:crypto';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCa } from '../../support/test-ca.js';
import type { SeenRequest } from '../../support/https-upstream.js';
import { echo, rejection, startAuthFixture, type AuthFixture } from './fixture.js';

const S = {
  openai: 'sk-e2e-openai-Qx7pLm2v9T',
  gemini: 'AIza-e2e+gem/ini=K3y', // '+', '/', '=' must be percent-encoded in the query
  telegram: '123456789:AAE2eTeleGramBotToken_xyz',
  twilioSid: 'AC00e2e0000000000000000000000000a1',
  twilioToken: 'twilio-e2e-auth-token-77',
  ddApi: 'dd-e2e-api-key-0a1b2c3d',
  ddApp: 'dd-e2e-app-key-4e5f6a7b',
  trelloKey: 'trello-e2e-key-9c8d',
  trelloToken: 'trello-e2e-token-7e6f5a',
  awsKeyId: 'AKIAE2EEXAMPLE000001',
  awsSecret: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYE2EKEY0001',
  hmac: 'hmac-e2e-signing-key-#1',
} as const;

let fx: AuthFixture;
beforeAll(async () => {
  fx = await startAuthFixture({ workers: 2 });
  const ca = createTestCa();
  await fx.addSecret('OPENAI_API_KEY', S.openai);
  await fx.addSecret('GEMINI_API_KEY', S.gemini);
  await fx.addSecret('TELEGRAM_BOT_TOKEN', S.telegram);
  await fx.addSecret('TWILIO_ACCOUNT_SID', S.twilioSid);
  await fx.addSecret('TWILIO_AUTH_TOKEN', S.twilioToken);
  await fx.addSecret('DATADOG_API_KEY', S.ddApi);
  await fx.addSecret('DATADOG_APP_KEY', S.ddApp);
  await fx.addSecret('TRELLO_API_KEY', S.trelloKey);
  await fx.addSecret('TRELLO_TOKEN', S.trelloToken);
  await fx.addSecret(
    'AWS_S3_CREDENTIALS',
    JSON.stringify({ accessKeyId: S.awsKeyId, secretAccessKey: S.awsSecret }),
  );
  await fx.addCustom(
    'signer',
    {
      hmac: {
        algorithm: 'sha256',
        header_name: 'x-signature',
        value_template: 't={{timestamp}},v1={{signature}}',
      },
    },
    S.hmac,
  );
  await fx.addCustom('mtls-svc', { mtls: {} }, JSON.stringify({ cert: ca.clientCert, key: ca.clientKey }));
}, 90_000);
afterAll(() => fx?.close());

/** Every secret value (and its encoded forms) that must never be printed or audited. */
function leakNeedles(): string[] {
  const ca = createTestCa();
  const out = new Set<string>();
  for (const v of Object.values(S)) {
    out.add(v);
    out.add(encodeURIComponent(v));
  }
  out.add(Buffer.from(`${S.twilioSid}:${S.twilioToken}`).toString('base64'));
  // A distinctive line of the client key's PEM body.
  out.add(ca.clientKey.split('\n')[1] ?? ca.clientKey);
  return [...out];
}

function expectNoLeak(text: string): void {
  for (const needle of leakNeedles())
    expect(text.includes(needle), `leaked ${needle.slice(0, 6)}…`).toBe(false);
}

const header = (seen: SeenRequest, name: string): string | undefined => {
  const v = seen.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
};

describe('header (openai)', () => {
  it('sends Authorization: Bearer <key>', async () => {
    const res = await fx.invoke({
      capability: 'openai/models',
      request: { method: 'GET', path: '/v1/models' },
    });
    expect(res.status).toBe(200);
    const seen = echo(res.body);
    expect(seen.path).toBe('/v1/models');
    expect(header(seen, 'authorization')).toBe(`Bearer ${S.openai}`);
    expect(header(seen, 'host')).toBe('api.openai.com');
    expect(seen.clientCertCn).toBeNull();
  });
});

describe('query (gemini)', () => {
  it('appends key=<percent-encoded secret> and keeps the caller query', async () => {
    const res = await fx.invoke({
      capability: 'gemini/models',
      request: { method: 'GET', path: '/v1beta/models?pageSize=5' },
    });
    expect(res.status).toBe(200);
    const seen = echo(res.body);
    expect(seen.path).toBe('/v1beta/models');
    const q = new URLSearchParams(seen.query);
    expect(q.get('key')).toBe(S.gemini);
    expect(q.get('pageSize')).toBe('5');
    expect(seen.query).toContain(`key=${encodeURIComponent(S.gemini)}`);
    expect(header(seen, 'authorization')).toBeUndefined();
  });

  it('a caller-supplied key= is refused (broker-owned parameter)', async () => {
    const err = await rejection(() =>
      fx.invoke({ capability: 'gemini/models', request: { method: 'GET', path: '/v1beta/models?key=mine' } }),
    );
    expect(err.code).toBe('policy_violation');
  });

  it('an upstream failure mid-response names no query secret', async () => {
    const err = await rejection(() =>
      fx.invoke({ capability: 'gemini/models', request: { method: 'GET', path: '/v1beta/models/reset' } }),
    );
    expect(err.code).toBe('upstream_unreachable');
    expectNoLeak(err.message);
  });
});

describe('path (telegram)', () => {
  it('prefixes /bot<token> to the path', async () => {
    const res = await fx.invoke({
      capability: 'telegram/get-me',
      request: { method: 'GET', path: '/getMe' },
    });
    expect(res.status).toBe(200);
    const seen = echo(res.body);
    expect(seen.path).toBe(`/bot${S.telegram}/getMe`);
    expect(header(seen, 'host')).toBe('api.telegram.org');
    expect(header(seen, 'authorization')).toBeUndefined();
  });

  it('an upstream failure names no path secret', async () => {
    const err = await rejection(() =>
      fx.invoke({ capability: 'telegram/get-me', request: { method: 'GET', path: '/getMe/reset' } }),
    );
    expect(err.code).toBe('upstream_unreachable');
    expectNoLeak(err.message);
  });
});

describe('basic (twilio)', () => {
  it('sends Authorization: Basic base64(sid:token) with the form body intact', async () => {
    const path = `/2010-04-01/Accounts/${S.twilioSid.slice(0, 2)}XX/Messages.json`;
    const body = 'To=%2B15555550100&From=%2B15555550199&Body=Hello';
    const res = await fx.invoke({
      capability: 'twilio/api',
      request: {
        method: 'POST',
        path,
        headers: [['content-type', 'application/x-www-form-urlencoded']],
        body,
      },
    });
    expect(res.status).toBe(200);
    const seen = echo(res.body);
    expect(seen.method).toBe('POST');
    expect(seen.path).toBe(path);
    expect(seen.body).toBe(body);
    expect(header(seen, 'authorization')).toBe(
      `Basic ${Buffer.from(`${S.twilioSid}:${S.twilioToken}`, 'utf8').toString('base64')}`,
    );
  });
});

describe('multi_header (datadog)', () => {
  it('sends DD-API-KEY and DD-APPLICATION-KEY', async () => {
    const res = await fx.invoke({
      capability: 'datadog/validate',
      request: { method: 'GET', path: '/api/v1/validate' },
    });
    expect(res.status).toBe(200);
    const seen = echo(res.body);
    expect(header(seen, 'dd-api-key')).toBe(S.ddApi);
    expect(header(seen, 'dd-application-key')).toBe(S.ddApp);
    expect(header(seen, 'authorization')).toBeUndefined();
  });
});

describe('multi_query (trello)', () => {
  it('appends key= and token=', async () => {
    const res = await fx.invoke({
      capability: 'trello/boards',
      request: { method: 'GET', path: '/1/boards/b0ard1?fields=name' },
    });
    expect(res.status).toBe(200);
    const seen = echo(res.body);
    expect(seen.path).toBe('/1/boards/b0ard1');
    const q = new URLSearchParams(seen.query);
    expect(q.get('key')).toBe(S.trelloKey);
    expect(q.get('token')).toBe(S.trelloToken);
    expect(q.get('fields')).toBe('name');
  });
});

// The signer's hash adapter is plain node:crypto; reusing it keeps one copy. The signature is still
// recomputed here from what the upstream actually received.
const Sha256 = NodeSha256;

describe('aws_sigv4 (aws-s3)', () => {
  it('signs with AWS4-HMAC-SHA256 for us-east-1/s3 and the signature verifies', async () => {
    const res = await fx.invoke({
      capability: 'aws-s3/objects',
      request: { method: 'GET', path: '/my-bucket?list-type=2&max-keys=10' },
    });
    expect(res.status).toBe(200);
    const seen = echo(res.body);
    const auth = header(seen, 'authorization') ?? '';
    const amzDate = header(seen, 'x-amz-date') ?? '';
    const m =
      /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/us-east-1\/s3\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/.exec(
        auth,
      );
    expect(m, auth.replace(/Signature=.*/, '')).not.toBeNull();
    const [, keyId, day, signedHeaders] = m as RegExpExecArray;
    expect(keyId).toBe(S.awsKeyId);
    expect(amzDate).toMatch(/^\d{8}T\d{6}Z$/);
    expect(amzDate.slice(0, 8)).toBe(day);
    // Empty GET body: the payload hash is SHA-256 of ''.
    expect(header(seen, 'x-amz-content-sha256')).toBe(createHash('sha256').update('').digest('hex'));
    expect(signedHeaders?.split(';')).toEqual(
      expect.arrayContaining(['host', 'x-amz-content-sha256', 'x-amz-date']),
    );

    // Recompute from exactly what the upstream received, with the same secret.
    const headers: Record<string, string> = {};
    for (const name of (signedHeaders as string).split(';')) headers[name] = header(seen, name) ?? '';
    const query: Record<string, string> = {};
    for (const [k, v] of new URLSearchParams(seen.query)) query[k] = v;
    const signer = new SignatureV4({
      credentials: { accessKeyId: S.awsKeyId, secretAccessKey: S.awsSecret },
      region: 'us-east-1',
      service: 's3',
      sha256: Sha256,
      uriEscapePath: false,
    });
    const iso = amzDate.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z');
    const expected = await signer.sign(
      {
        method: seen.method,
        protocol: 'https:',
        hostname: 's3.us-east-1.amazonaws.com',
        path: seen.path,
        query,
        headers,
      },
      { signingDate: new Date(iso) },
    );
    expect(expected.headers.authorization).toBe(auth);
  });
});

describe('hmac (custom credential)', () => {
  it('sends t=<ts>,v1=HMAC-SHA256(key, canonical request) that the provider can verify', async () => {
    const body = JSON.stringify({ event: 'ping', n: 1 });
    const res = await fx.invoke({
      capability: 'signer/api',
      request: {
        method: 'POST',
        path: '/hooks/x?b=2&a=1',
        headers: [['content-type', 'application/json']],
        body,
      },
    });
    expect(res.status).toBe(200);
    const seen = echo(res.body);
    expect(seen.body).toBe(body);
    const value = header(seen, 'x-signature') ?? '';
    const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(value);
    expect(m, 'x-signature format').not.toBeNull();
    const [, ts, sig] = m as RegExpExecArray;
    expect(Math.abs(Number(ts) - Date.now() / 1000)).toBeLessThan(120);
    // Provider-side verification, written independently of src/request-worker/auth/hmac.ts.
    const canonicalQuery = [...new URLSearchParams(seen.query)]
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .sort()
      .join('&');
    const bodyHash = createHash('sha256').update(Buffer.from(seen.bodyBase64, 'base64')).digest('hex');
    const canonical = `${seen.method}\n${seen.path}\n${canonicalQuery}\n${ts}\n${bodyHash}`;
    expect(sig).toBe(createHmac('sha256', S.hmac).update(canonical, 'utf8').digest('hex'));
    expect(createHmac('sha256', 'wrong-key').update(canonical, 'utf8').digest('hex')).not.toBe(sig);
  });
});

describe('mtls (custom credential)', () => {
  it('presents the vault client certificate; other credentials present none', async () => {
    const res = await fx.invoke({ capability: 'mtls-svc/api', request: { method: 'GET', path: '/whoami' } });
    expect(res.status).toBe(200);
    const seen = echo(res.body);
    expect(seen.clientCertCn).toBe('aivault test client');
    expect(header(seen, 'authorization')).toBeUndefined();
    // A different credential on the same host:port never reuses the client-cert connection pool.
    const plain = echo(
      (await fx.invoke({ capability: 'openai/models', request: { method: 'GET', path: '/v1/models' } })).body,
    );
    expect(plain.clientCertCn).toBeNull();
  });
});

describe('no auth value is ever audited or printed', () => {
  it('audit lines carry paths without auth material', async () => {
    const text = fx.auditText();
    expect(text.length).toBeGreaterThan(0);
    expectNoLeak(text);
    const lines = text
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { capability?: string; path?: string });
    expect(lines.find((l) => l.capability === 'telegram/get-me')?.path).toBe('/getMe');
    expect(lines.find((l) => l.capability === 'gemini/models')?.path).toBe('/v1beta/models');
  });

  it('the response headers handed to the caller carry no injected auth', async () => {
    const res = await fx.invoke({
      capability: 'datadog/validate',
      request: { method: 'GET', path: '/api/v1/validate/leaky-headers' },
    });
    expectNoLeak(JSON.stringify(res.headers));
  });
});

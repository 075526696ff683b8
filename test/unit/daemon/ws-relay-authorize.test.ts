// The WebSocket relay takes the pipeline's one authorization path (src/request-worker/pipeline/authorize.ts), so the
// drift it had is gone: a rate-limited capability with no limiter fails closed (it used to be admitted
// uncounted), errors are scrubbed of the relay's secret values whatever step raised them (an OAuth2
// refresh failure used to reach the client raw), and an mTLS credential's own CA verifies the upstream
// (it used to be dropped). Real MessagePort, real rate limiter, real auth strategies, and a real local
// WSS upstream that requires the client certificate; only the catalog/plan step is a stub.
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { describe, expect, it, onTestFinished } from 'vitest';
import { WebSocketServer } from 'ws';
import { AivaultError, ok } from '../../../src/core/errors.js';
import type { Plan } from '../../../src/core/broker/types.js';
import type { DevOverrides } from '../../../src/core/config/env.js';
import type { AuditInput } from '../../../src/stores/audit/audit-log.js';
import { createAuth, SecretValues } from '../../../src/request-worker/auth/index.js';
import { runWsRelay } from '../../../src/request-worker/ws-upstream.js';
import type { WsWorkerToMain } from '../../../src/core/threads/ws-protocol.js';
import { createRateLimitBuffer, RateLimiter } from '../../../src/core/threads/rate-limit.js';
import type { PipelineDeps } from '../../../src/request-worker/pipeline/types.js';
import { createTestCa } from '../../support/test-ca.js';
import { testPlan } from '../pipeline/fixtures/plan.js';

const SECRET = 'rt-secret-0123456789abcdef';

function planOf(over: Partial<Plan> = {}): Plan {
  return testPlan({
    capabilityId: 'rt/realtime',
    credentialId: 'rt',
    provider: 'rt',
    host: 'upstream.test',
    path: '/v1/realtime',
    secretRefs: { secret: 'sec_rt' },
    ...over,
  });
}

function depsFor(
  plan: Plan,
  opts: {
    value?: string;
    rateLimiter?: RateLimiter;
    oauth2?: PipelineDeps['oauth2'];
    dev?: DevOverrides;
    audit?: AuditInput[];
  } = {},
): PipelineDeps {
  return {
    plan: async () => ok(plan),
    applyAuth: async (p, input, bySlot) => {
      const apply = createAuth(p.auth, p.credentialParams);
      if (!apply.ok) return apply;
      return apply.value(input, SecretValues.from(bySlot));
    },
    secrets: {
      devOverrides: async () => opts.dev,
      decrypt: async (ids) => new Map(ids.map((id) => [id, opts.value ?? SECRET])),
    },
    ...(opts.rateLimiter ? { rateLimiter: opts.rateLimiter } : {}),
    ...(opts.oauth2 ? { oauth2: opts.oauth2 } : {}),
    upstream: () => {
      throw new Error('the relay dials with ws, not the HTTP upstream');
    },
    audit: async (e) => void opts.audit?.push(e),
  };
}

/** Run one relay; resolves with what the main thread got up to `error` or `ws-open` (then closes it). */
async function relay(deps: PipelineDeps): Promise<WsWorkerToMain[]> {
  const { port1, port2 } = new MessageChannel();
  onTestFinished(() => port1.close());
  const seen: WsWorkerToMain[] = [];
  const settled = new Promise<void>((resolve) => {
    (port1 as MessagePort).on('message', (m: WsWorkerToMain) => {
      seen.push(m);
      if (m.t === 'ws-open') port1.postMessage({ t: 'ws-close', code: 1000, reason: 'bye' });
      if (m.t === 'error' || m.t === 'ws-close') resolve();
    });
  });
  const run = runWsRelay(
    deps,
    { kind: 'ws', connect: { capability: 'rt/realtime', path: '/v1/realtime' }, context: {}, port: port2 },
    Promise.resolve(),
  );
  await settled;
  await run;
  return seen;
}

const limited = planOf({ policy: { rateLimitPerMinute: 1, responseBlocklist: [], bufferResponse: false } });

describe('WebSocket relay authorization', () => {
  it('fails closed on a rate-limited capability when no limiter is wired', async () => {
    const audit: AuditInput[] = [];
    const seen = await relay(depsFor(limited, { audit }));
    expect(seen.find((m) => m.t === 'error')).toMatchObject({ error: { error: 'internal' } });
    expect(seen.some((m) => m.t === 'ws-open')).toBe(false);
    expect(audit[0]).toMatchObject({ kind: 'ws', capability: 'rt/realtime', errorCode: 'internal' });
  });

  it('counts relays against the limit and scrubs secret values from every error', async () => {
    const rateLimiter = new RateLimiter(createRateLimitBuffer(4));
    const oauthPlan = planOf({
      ...limited,
      auth: { oauth2: { grant_type: 'refresh_token', token_endpoint: 'https://auth.test/token' } },
    });
    const state = JSON.stringify({ refreshToken: SECRET, accessToken: 'old-access-token-0001' });
    // A token endpoint that echoes the refresh token into the failure the relay reports.
    const oauth2: PipelineDeps['oauth2'] = {
      ensure: async () => {
        throw new AivaultError('auth_failed', `refresh failed: invalid_grant for ${SECRET}`);
      },
    };
    const first = await relay(depsFor(oauthPlan, { value: state, rateLimiter, oauth2 }));
    const error = first.find((m) => m.t === 'error');
    expect(error).toMatchObject({ error: { error: 'auth_failed' } });
    expect(JSON.stringify(first)).not.toContain(SECRET);
    expect(JSON.stringify(first)).toContain('refresh failed');

    const second = await relay(depsFor(oauthPlan, { value: state, rateLimiter, oauth2 }));
    expect(second.find((m) => m.t === 'error')).toMatchObject({ error: { error: 'rate_limited' } });
  });

  it("verifies the upstream with the mTLS credential's own CA and presents the client certificate", async () => {
    const ca = createTestCa();
    const server = createServer({
      cert: ca.serverCert,
      key: ca.serverKey,
      ca: ca.caCert,
      requestCert: true,
      rejectUnauthorized: true,
    });
    const wss = new WebSocketServer({ server });
    const peers: string[] = [];
    wss.on('connection', (ws, req) => {
      const cn = (req.socket as TLSSocket).getPeerCertificate().subject?.CN;
      peers.push(String(cn));
      ws.on('error', () => undefined);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    onTestFinished(async () => {
      wss.close();
      await new Promise((r) => server.close(r));
    });
    const port = (server.address() as AddressInfo).port;
    const dev: DevOverrides = {
      resolve: new Map([['upstream.test', { address: '127.0.0.1', port }]]),
      caCertPath: undefined, // the test CA is trusted only through the credential
      allowNonDefaultPorts: true,
      http1Only: false,
    };
    const mtls = planOf({ auth: { mtls: {} } });
    const value = JSON.stringify({ cert: ca.clientCert, key: ca.clientKey, ca: ca.caCert });
    const seen = await relay(depsFor(mtls, { value, dev }));
    expect(seen.find((m) => m.t === 'error')).toBeUndefined();
    expect(seen.some((m) => m.t === 'ws-open')).toBe(true);
    expect(peers).toEqual(['aivault test client']);
  });
});

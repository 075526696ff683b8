/**
 * The request worker's half of routing (src/request-worker/pipeline/call-request.ts): the main thread hands over bytes
 * and a passthrough request as received; the worker parses the proxy's JSON envelope and picks the /v/
 * capability, auditing a miss once.
 */
import { describe, expect, it } from 'vitest';
import { envelopeOf } from '../../../src/request-worker/pipeline/call-request.js';
import type { AuditInput } from '../../../src/stores/audit/audit-log.js';
import type { RequestContext } from '../../../src/core/broker/types.js';
import { registry, standardSnapshot } from '../broker/fixtures.js';

function deps() {
  const audited: AuditInput[] = [];
  return {
    audited,
    deps: {
      registry,
      catalog: async () => standardSnapshot(),
      audit: async (e: AuditInput) => void audited.push(e),
    },
  };
}

const bytes = (s: string): ArrayBuffer => new TextEncoder().encode(s).buffer;
const ctx: RequestContext = { clientIp: '127.0.0.1', token: { capabilities: ['openai/*'] } };
const code = async (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'ok',
    (e: { code?: string }) => e.code ?? 'thrown',
  );

describe('envelopeOf', () => {
  it('an envelope decoded by the transport is used as it is', async () => {
    const envelope = { capability: 'openai/models', request: { method: 'GET', path: '/v1/models' } };
    expect(await envelopeOf(deps().deps, { envelope }, {})).toBe(envelope);
  });

  it('the proxy JSON is parsed here; a body that is not a JSON object is invalid_request', async () => {
    const { deps: d } = deps();
    const env = await envelopeOf(d, { envelopeJson: bytes('{"capability":"openai/models"}') }, ctx);
    expect(env).toEqual({ capability: 'openai/models' });
    expect(await code(envelopeOf(d, { envelopeJson: bytes('{nope') }, ctx))).toBe('invalid_request');
    expect(await code(envelopeOf(d, { envelopeJson: bytes('[1]') }, ctx))).toBe('invalid_request');
  });

  it('a passthrough request becomes the most specific granted capability, query and body kept', async () => {
    const { deps: d, audited } = deps();
    const env = await envelopeOf(
      d,
      {
        passthrough: {
          credential: 'openai',
          method: 'POST',
          path: '/v1/chat/completions',
          query: 'a=1',
          headers: [['content-type', 'application/json']],
        },
        body: bytes('{"x":1}'),
      },
      ctx,
    );
    expect(env).toEqual({
      capability: 'openai/chat-completions',
      credential: 'openai',
      request: {
        method: 'POST',
        path: '/v1/chat/completions?a=1',
        headers: [['content-type', 'application/json']],
        bodyBytes: new Uint8Array(Buffer.from('{"x":1}')),
      },
    });
    expect(audited).toEqual([]);
  });

  it('no match: one audit line (no query in it), then the error; the token scope is applied', async () => {
    const { deps: d, audited } = deps();
    const req = { credential: 'openai', method: 'DELETE', path: '/v1/chat', query: 'k=secret', headers: [] };
    expect(await code(envelopeOf(d, { passthrough: req }, ctx))).toBe('policy_violation');
    expect(audited).toEqual([
      {
        kind: 'invoke',
        credential: 'openai',
        method: 'DELETE',
        path: '/v1/chat',
        errorCode: 'policy_violation',
        clientIp: '127.0.0.1',
        note: 'passthrough: no capability matched',
      },
    ]);
    const narrow: RequestContext = { token: { capabilities: ['anthropic/messages'] } };
    const get = { ...req, method: 'POST', path: '/v1/chat/completions', query: '' };
    expect(await code(envelopeOf(d, { passthrough: get }, narrow))).toBe('policy_violation');
    expect(await code(envelopeOf(d, { passthrough: { ...get, credential: 'nope' } }, ctx))).toBe(
      'credential_not_found',
    );
  });
});

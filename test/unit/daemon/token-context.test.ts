/**
 * The request context a proxy token grants a call on the HTTP listener (src/front/http/proxy-tokens.ts),
 * which the main thread keeps per token record: it must always be the context of THIS record and THIS peer.
 */
import { describe, expect, it } from 'vitest';
import { tokenContext } from '../../../src/front/http/proxy-tokens.js';
import type { ProxyTokenRecord } from '../../../src/stores/tokens/tokens.js';

const record = (over: Partial<ProxyTokenRecord> = {}): ProxyTokenRecord => ({
  kind: 'proxy',
  id: 'tok-1',
  hash: 'h'.repeat(64),
  capabilities: ['openai/*'],
  createdAtMs: 0,
  expiresAtMs: Number.MAX_SAFE_INTEGER,
  ...over,
});

describe('tokenContext', () => {
  it('carries the token scope and the peer', () => {
    const r = record({ credential: 'work', workspaceId: 'ws1', groupId: 'g1' });
    expect(tokenContext(r, '127.0.0.1')).toEqual({
      clientIp: '127.0.0.1',
      workspaceId: 'ws1',
      groupId: 'g1',
      token: { id: 'tok-1', capabilities: ['openai/*'], credential: 'work' },
    });
  });

  it('is the same object for the same record and peer, a new one for another peer', () => {
    const r = record();
    const a = tokenContext(r, '127.0.0.1');
    expect(tokenContext(r, '127.0.0.1')).toBe(a);
    const b = tokenContext(r, '127.0.0.2');
    expect(b.clientIp).toBe('127.0.0.2');
    expect(tokenContext(r, '')).not.toHaveProperty('clientIp');
    expect(tokenContext(r, '127.0.0.1').clientIp).toBe('127.0.0.1');
  });

  it('never hands one record the context of another (a re-issued record with a narrower scope)', () => {
    const wide = record({ capabilities: ['openai/*', 'anthropic/*'] });
    expect(tokenContext(wide, '127.0.0.1').token?.capabilities).toEqual(['openai/*', 'anthropic/*']);
    const narrow = record({ capabilities: ['openai/models'] });
    expect(tokenContext(narrow, '127.0.0.1').token?.capabilities).toEqual(['openai/models']);
  });
});

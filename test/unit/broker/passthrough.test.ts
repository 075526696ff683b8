// Passthrough matching (`/v/{credential}/…`): which capability labels a request; custom capabilities
// count only for the credential they are bound to, and a new catalog snapshot is seen at once.
import { describe, expect, it } from 'vitest';
import { matchPassthrough } from '../../../src/core/broker/passthrough.js';
import type { BrokerSnapshot, Capability, Credential } from '../../../src/core/broker/types.js';
import { registry, registryCredential, standardSnapshot } from './fixtures.js';

const second: Credential = registryCredential('openai-2', 'openai', { secret: 's-openai' });
const custom = (id: string, credentialId: string, prefix: string): Capability => ({
  id,
  provider: 'openai',
  allow: { hosts: ['api.openai.com'], methods: ['POST'], pathPrefixes: [prefix] },
  source: 'custom',
  credentialId,
});

const match = (snapshot: BrokerSnapshot, credentialId: string, path: string, tokenCapabilities?: string[]) =>
  matchPassthrough({
    snapshot,
    registry,
    credentialId,
    method: 'POST',
    path,
    ...(tokenCapabilities ? { tokenCapabilities } : {}),
  });

describe('matchPassthrough', () => {
  it('the most specific prefix wins, among registry and bound custom capabilities', () => {
    const snap = standardSnapshot({
      credentials: [second],
      capabilities: [custom('my/chat-sub', 'openai', '/v1/chat/completions/sub')],
    });
    const deep = match(snap, 'openai', '/v1/chat/completions/sub/x');
    expect(deep.ok && deep.value).toEqual({
      capability: 'my/chat-sub',
      matches: ['my/chat-sub', 'openai/chat-completions'],
    });
    const shallow = match(snap, 'openai', '/v1/chat/completions');
    expect(shallow.ok && shallow.value.capability).toBe('openai/chat-completions');
  });

  it('a custom capability bound to one credential never labels another credential’s calls', () => {
    const snap = standardSnapshot({
      credentials: [second],
      capabilities: [custom('my/other', 'openai-2', '/v2/other')],
    });
    expect(match(snap, 'openai', '/v2/other/x')).toMatchObject({
      ok: false,
      error: { code: 'policy_violation' },
    });
    const r = match(snap, 'openai-2', '/v2/other/x');
    expect(r.ok && r.value.capability).toBe('my/other');
  });

  it('each snapshot is read as it is: a capability added in a newer snapshot matches at once', () => {
    const before = standardSnapshot({ credentials: [second] });
    expect(match(before, 'openai-2', '/v3/new').ok).toBe(false);
    const after = standardSnapshot({
      credentials: [second],
      capabilities: [custom('my/new', 'openai-2', '/v3')],
    });
    const r = match(after, 'openai-2', '/v3/new');
    expect(r.ok && r.value.capability).toBe('my/new');
    expect(match(before, 'openai-2', '/v3/new').ok).toBe(false); // the older snapshot is unchanged
  });

  it('a token scope narrows the candidates; an unknown credential is its own error', () => {
    const snap = standardSnapshot({
      capabilities: [custom('my/chat-sub', 'openai', '/v1/chat/completions/sub')],
    });
    const r = match(snap, 'openai', '/v1/chat/completions/sub/x', ['openai/chat-completions']);
    expect(r.ok && r.value.capability).toBe('openai/chat-completions');
    expect(match(snap, 'openai', '/v1/chat/completions', ['anthropic/*'])).toMatchObject({
      ok: false,
      error: { code: 'policy_violation' },
    });
    expect(match(snap, 'nope', '/v1/chat/completions')).toMatchObject({
      ok: false,
      error: { code: 'credential_not_found' },
    });
  });

  it('a route matched once is matched again per token: one scope never leaks into another', () => {
    const snap = standardSnapshot({
      capabilities: [custom('my/chat-sub', 'openai', '/v1/chat/completions/sub')],
    });
    const path = '/v1/chat/completions/sub/x';
    for (let i = 0; i < 2; i++) {
      const all = match(snap, 'openai', path);
      expect(all.ok && all.value).toEqual({
        capability: 'my/chat-sub',
        matches: ['my/chat-sub', 'openai/chat-completions'],
      });
      const narrow = match(snap, 'openai', path, ['openai/chat-completions']);
      expect(narrow.ok && narrow.value).toEqual({
        capability: 'openai/chat-completions',
        matches: ['openai/chat-completions'],
      });
      const none = match(snap, 'openai', path, ['anthropic/*']);
      expect(none.ok || none.error.message).toMatch(/the proxy token grants no capability/);
    }
  });

  it('many distinct and very long paths all match as the first time (the route memory is bounded)', () => {
    const snap = standardSnapshot({});
    for (let i = 0; i < 1500; i++) {
      const r = match(snap, 'openai', `/v1/chat/completions/${'x'.repeat(i % 400)}${i}`);
      expect(r.ok && r.value.capability).toBe('openai/chat-completions');
    }
    expect(match(snap, 'openai', '/v1/chat/../completions')).toMatchObject({
      ok: false,
      error: { code: 'policy_violation' },
    });
    expect(match(snap, 'openai', '/v1/chat/../completions')).toMatchObject({
      ok: false,
      error: { code: 'policy_violation' },
    });
  });
});

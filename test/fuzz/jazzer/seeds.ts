/**
 * Seed inputs and libFuzzer dictionaries per Jazzer.js target: valid and near-valid examples of each input
 * grammar, so mutation starts inside the parser instead of at its first reject. Written into the working
 * corpus directory by runner.ts (generated, not committed as binary files, so they track the protocol).
 */
import { encodeFrame } from '../../../src/core/protocol/frames.js';

export type JazzerTarget = 'frame' | 'envelope' | 'path' | 'host' | 'route' | 'broker' | 'canary';

/**
 * The canary's seed capability. Any other valid `canary/…` id reaches the planted bug, so a single byte
 * mutation inside it does: the canary tests that the harness reports findings, not how clever libFuzzer
 * is. (An earlier version needed libFuzzer to rewrite this id into one exact string through comparison
 * feedback; on a busy CI machine it missed that within 60 s, so the check was flaky.)
 */
export const CANARY_SEED_ID = 'canary/harmless-ok';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const emptyBroker = () => ({ version: 1, credentials: [], capabilities: [], policies: [] });

const invoke = {
  capability: 'openai/chat-completions',
  credential: 'openai',
  request: {
    method: 'POST',
    path: '/v1/chat/completions?stream=true',
    headers: [['content-type', 'application/json']] as [string, string][],
    body: '{"model":"gpt-4o"}',
  },
};

function frameSeeds(): Uint8Array[] {
  const headers: [string, string][] = [['content-type', 'text/event-stream']];
  const frames: Parameters<typeof encodeFrame>[0][] = [
    {
      type: 'invoke',
      id: 1,
      envelope: invoke,
      context: { workspaceId: 'w1' },
      stream: true,
      timeoutMs: 30_000,
    },
    { type: 'cancel', id: 1 },
    { type: 'ping', id: 2 },
    { type: 'unlock', id: 3, passphrase: 'correct horse' },
    { type: 'status', id: 4 },
    { type: 'head', id: 1, status: 200, headers },
    { type: 'chunk', id: 1, data: utf8('data: {}\n\n') },
    { type: 'error', id: 1, error: 'policy_violation', message: 'denied' },
    { type: 'result', id: 4, data: { unlocked: true } },
  ];
  return frames.map((f) => encodeFrame(f));
}

export const SEEDS: Record<JazzerTarget, () => Uint8Array[]> = {
  frame: frameSeeds,
  envelope: () =>
    [
      invoke,
      { capability: 'echo/api', request: { method: 'GET', path: '/v1/models' } },
      { capability: 'echo/api', request: { path: '/v1/upload', multipart: [{ name: 'a', value: 'b' }] } },
      { capability: 'echo/api', request: { path: '/v1/f', bodyFilePath: './x.bin' } },
    ].map((e) => utf8(JSON.stringify(e))),
  path: () =>
    [
      '/v1/models',
      '/v1/chat/completions?stream=true',
      '/v1/a%2fb',
      '/v1/./x',
      '/v1/%2e%2e/admin',
      '/v1//x',
    ].map(utf8),
  host: () =>
    [
      '*.openai.com\napi.openai.com',
      'api.openai.com\napi.openai.com:443',
      '*.x.test:8443\na.x.test:8443',
    ].map(utf8),
  // "<request target>\n<Authorization>\n<x-api-key>"
  route: () =>
    [
      '/v/openai/v1/chat/completions\nBearer avt_abc\n',
      '/v/my%20cred/v1/models?x=1\n\nsk-proxy',
      '/v/openai\nbearer  tok \n k ',
      '/v//x\nBasic abc\n',
      '/v/%zz/v1\n\n',
      '/aivault/invoke\nBearer t\nk',
    ].map(utf8),
  broker: () =>
    [
      emptyBroker(),
      {
        ...emptyBroker(),
        credentials: [
          {
            id: 'openai',
            provider: 'openai',
            source: 'registry',
            secretRefs: { secret: 'vault:secret:s1' },
            createdAtMs: 1,
          },
          {
            id: 'shop',
            provider: 'shopify',
            source: 'registry',
            secretRefs: { secret: 'vault:secret:s2' },
            hosts: ['acme.myshopify.com', 'evil.test'],
            createdAtMs: 1,
          },
          {
            id: 'x',
            provider: 'openai',
            source: 'custom',
            secretRefs: { secret: 'vault:secret:s1' },
            auth: { header: { header_name: 'authorization', value_template: 'Bearer {{secret}}' } },
            hosts: ['api.openai.com.evil.test'],
            createdAtMs: 1,
          },
        ],
        capabilities: [
          {
            id: 'openai/chat-completions',
            provider: 'openai',
            credentialId: 'openai',
            allow: { hosts: ['evil.test'], methods: ['POST'], pathPrefixes: ['/'] },
          },
        ],
      },
    ].map((doc) => utf8(JSON.stringify(doc))),
  canary: () => [utf8(JSON.stringify({ ...invoke, capability: CANARY_SEED_ID }))],
};

/** libFuzzer dictionary entries (tokens the grammar uses), one list per target. */
export const DICTIONARIES: Record<JazzerTarget, string[]> = {
  frame: [
    'type',
    'id',
    'v',
    'invoke',
    'envelope',
    'context',
    'stream',
    'timeoutMs',
    'cancel',
    'ping',
    'unlock',
    'status',
  ],
  envelope: [
    '"capability"',
    '"credential"',
    '"request"',
    '"method"',
    '"path"',
    '"headers"',
    '"body"',
    '"bodyBase64"',
    '"bodyFilePath"',
    '"multipart"',
    '"multipartFiles"',
    '"url"',
    '{',
    '}',
    '[',
    ']',
    ':',
    ',',
  ],
  path: [
    '/',
    '..',
    '.',
    '%2e',
    '%2E',
    '%2f',
    '%2F',
    '%5c',
    '%00',
    '%25',
    '%c0%ae',
    '?',
    '#',
    ';',
    '\\',
    '/v1',
  ],
  host: ['*.', '.', ':443', ':', '@', '[', ']', '::1', '127.0.0.1', 'xn--', '\n'],
  route: ['/v/', '/', '%', '%2f', '%00', 'Bearer ', 'bearer', '\t', ' ', '\n'],
  broker: [
    '"version"',
    '"credentials"',
    '"capabilities"',
    '"policies"',
    '"source"',
    '"registry"',
    '"custom"',
    '"hosts"',
    '"provider"',
    '"openai"',
    '"shopify"',
    '"zendesk"',
    '"auth"',
    '"secretRefs"',
    '"allow"',
    '"*.myshopify.com"',
    '"api.openai.com"',
    '.myshopify.com',
    '.evil.test',
    '{',
    '}',
    '[',
    ']',
  ],
  canary: ['"capability"', '"request"', '"path"', 'canary', '/'],
};

/** Dictionary file text in libFuzzer's format (one quoted, escaped token per line). */
export function dictionaryText(target: JazzerTarget): string {
  const esc = (s: string): string =>
    [...Buffer.from(s, 'utf8')]
      .map((b) =>
        b >= 0x20 && b < 0x7f && b !== 0x22 && b !== 0x5c
          ? String.fromCharCode(b)
          : `\\x${b.toString(16).padStart(2, '0')}`,
      )
      .join('');
  return DICTIONARIES[target].map((t) => `"${esc(t)}"`).join('\n') + '\n';
}

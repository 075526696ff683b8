// Cross-file invariants the schema can't express: hosts, claims, placeholders, ids, and the auth facts per
// provider that the broker relies on.
import { describe, expect, it } from 'vitest';
import {
  authTemplates,
  requiredPlaceholders,
  templatePlaceholders,
} from '../../../src/core/registry/index.js';
// The broker's own matcher, so registry prefixes are checked against the semantics actually enforced.
import { isValidHostPattern, isWildcardPattern, matchHost } from '../../../src/core/broker/hosts.js';
import { authTypeOf } from '../../../src/core/registry/auth-type.js';
import { unwrap } from '../../../src/core/errors.js';
import { isUnderPrefix } from '../../../src/core/broker/path.js';
import { HTTP_METHODS } from '../../../src/core/registry/types.js';
import type { RegistryProvider } from '../../../src/core/registry/types.js';
import { loadProviders } from './fixtures.js';

const providers = loadProviders();
const byId = new Map(providers.map((p) => [p.data.provider, p.data]));
const get = (id: string): RegistryProvider => {
  const p = byId.get(id);
  if (!p) throw new Error(`missing provider ${id}`);
  return p;
};

const REQUIRED = [
  // every provider the reference registry ships
  'airtable', 'anthropic', 'calendly', 'deepgram', 'deepl', 'discord', 'elevenlabs', 'fal', 'firecrawl', 'gemini',
  'github', 'google-calendar', 'google-gmail', 'google-places', 'hubspot', 'intercom', 'linear', 'mailgun', 'netlify',
  'notion', 'openai', 'openrouter', 'plaid', 'postmark', 'quickbooks', 'reddit', 'remove-bg', 'replicate', 'resend',
  'sendgrid', 'shopify', 'slack', 'spotify', 'square', 'stripe', 'telegram', 'todoist', 'trello', 'tripo', 'twilio',
  'vercel', 'x', 'xero', 'youtube',
  // additions
  'mistral', 'groq', 'cohere', 'perplexity', 'fireworks', 'together', 'huggingface', 'stability', 'assemblyai',
  'gitlab', 'jira', 'sentry', 'datadog', 'cloudflare', 'supabase', 'pinecone', 'zendesk', 'mailchimp', 'posthog',
  'aws-bedrock', 'aws-s3', 'xai', 'deepseek', 'voyage', 'brave-search', 'tavily', 'exa', 'jina',
]; // prettier-ignore

describe('registry invariants', () => {
  it('ships at least 60 providers including every required one', () => {
    expect(providers.length).toBeGreaterThanOrEqual(60);
    expect(REQUIRED.filter((id) => !byId.has(id))).toEqual([]);
  });

  it('names each file after its provider', () => {
    for (const { file, data } of providers) expect(file).toBe(`${data.provider}.json`);
  });

  it('gives every capability a unique provider-scoped id', () => {
    const seen = new Set<string>();
    for (const { data } of providers) {
      for (const cap of data.capabilities) {
        expect(cap.provider).toBe(data.provider);
        expect(cap.id.startsWith(`${data.provider}/`)).toBe(true);
        expect(seen.has(cap.id), cap.id).toBe(false);
        seen.add(cap.id);
      }
    }
  });

  it('gives every capability exactly one host from its provider, and explicit methods and prefixes', () => {
    for (const { data } of providers) {
      for (const cap of data.capabilities) {
        const { hosts, methods, pathPrefixes } = cap.allow;
        expect(hosts, cap.id).toHaveLength(1);
        const host = hosts[0] as string;
        // A capability served only by credential alternatives (OpenAI's Codex ones) uses their hosts.
        const allowed = [
          ...data.hosts,
          ...(data.credentialAlternatives ?? [])
            .filter((a) => a.capabilities.includes(cap.id))
            .flatMap((a) => a.hosts),
        ];
        const ok = allowed.includes(host) || allowed.some((p) => isWildcardPattern(p) && matchHost(p, host));
        expect(ok, `${cap.id} host ${host} not in ${allowed.join(',')}`).toBe(true);
        expect(methods.length, cap.id).toBeGreaterThan(0);
        for (const m of methods) expect(HTTP_METHODS, cap.id).toContain(m);
        expect(pathPrefixes.length, cap.id).toBeGreaterThan(0);
        for (const prefix of pathPrefixes) {
          expect(prefix.startsWith('/'), `${cap.id} ${prefix}`).toBe(true);
          expect(/\.\.|\/\/|%|\\|\?|#/.test(prefix), `${cap.id} ${prefix}`).toBe(false);
        }
        expect(cap.docs?.summary, `${cap.id} docs.summary`).toBeTruthy();
      }
    }
  });

  it('uses only hosts the broker accepts as canonical policy hosts', () => {
    for (const { data } of providers) {
      for (const host of [...data.hosts, ...data.capabilities.flatMap((c) => c.allow.hosts)]) {
        expect(isValidHostPattern(host), `${data.provider} ${host}`).toBe(true);
      }
    }
  });

  it('uses a single leading wildcard label only, never the apex', () => {
    for (const { data } of providers) {
      for (const host of data.hosts) {
        if (host.includes('*')) expect(/^\*\.[^*]+\.[^*]+$/.test(host), host).toBe(true);
      }
    }
    for (const [id, pattern] of [
      ['shopify', '*.myshopify.com'],
      ['jira', '*.atlassian.net'],
      ['zendesk', '*.zendesk.com'],
      ['supabase', '*.supabase.co'],
      ['mailchimp', '*.api.mailchimp.com'],
    ] as const) {
      expect(get(id).hosts).toEqual([pattern]);
      for (const cap of get(id).capabilities) expect(cap.allow.hosts).toEqual([pattern]);
    }
  });

  it('claims every secret name at most once across the registry', () => {
    const claims = new Map<string, string>();
    for (const { data } of providers) {
      for (const name of Object.keys(data.vaultSecrets)) {
        expect(
          claims.get(name),
          `${name} claimed by ${claims.get(name)} and ${data.provider}`,
        ).toBeUndefined();
        claims.set(name, data.provider);
      }
    }
    expect(claims.get('GEMINI_API_KEY')).toBe('gemini');
    expect(claims.get('YOUTUBE_API_KEY')).toBe('youtube');
    expect(claims.get('GOOGLE_PLACES_API_KEY')).toBe('google-places');
    expect(claims.get('GOOGLE_GMAIL_OAUTH')).toBe('google-gmail');
    expect(claims.get('GOOGLE_CALENDAR_OAUTH')).toBe('google-calendar');
  });

  it('can satisfy every auth placeholder from the claimed secrets (or documented JSON fields)', () => {
    for (const { data } of providers) {
      const type = unwrap(authTypeOf(data.auth));
      const jsonSecrets = data.jsonSecrets ?? {};
      for (const name of Object.keys(jsonSecrets))
        expect(data.vaultSecrets, data.provider).toHaveProperty(name);
      const available = new Set<string>(Object.values(data.vaultSecrets));
      for (const shape of Object.values(jsonSecrets)) {
        for (const f of [...shape.required, ...(shape.optional ?? [])]) available.add(f);
      }
      for (const ph of requiredPlaceholders(data))
        expect(available.has(ph), `${data.provider}: {{${ph}}}`).toBe(true);
      if (type === 'oauth2' || type === 'aws_sigv4') {
        // Strategy-consumed JSON secrets: every claimed secret must document its fields.
        for (const name of Object.keys(data.vaultSecrets))
          expect(jsonSecrets[name], `${data.provider} ${name}`).toBeDefined();
      } else {
        // Template strategies: no claimed secret is dead weight.
        const used = new Set(authTemplates(data.auth).flatMap(templatePlaceholders));
        for (const [name, ph] of Object.entries(data.vaultSecrets)) {
          expect(used.has(ph) || jsonSecrets[name] !== undefined, `${data.provider} ${name} unused`).toBe(
            true,
          );
        }
      }
    }
  });

  it('documents the JSON secret shapes the strategies expect', () => {
    for (const { data } of providers) {
      const type = unwrap(authTypeOf(data.auth));
      for (const shape of Object.values(data.jsonSecrets ?? {})) {
        if (type === 'oauth2') {
          expect(shape.required).toEqual(['clientId', 'refreshToken']);
          expect(shape.optional).toContain('clientSecret');
        }
        if (type === 'aws_sigv4') {
          expect(shape.required).toEqual(['accessKeyId', 'secretAccessKey']);
          expect(shape.optional).toEqual(['sessionToken']);
        }
      }
    }
  });

  it('matches each provider to its real auth strategy', () => {
    const expected: Record<string, string> = {
      openai: 'header', anthropic: 'header', discord: 'header', github: 'header', slack: 'header',
      gemini: 'query', youtube: 'query', telegram: 'path',
      twilio: 'basic', mailgun: 'basic', jira: 'basic', zendesk: 'basic', mailchimp: 'basic',
      trello: 'multi_query', datadog: 'multi_header', plaid: 'multi_header', supabase: 'multi_header',
      spotify: 'oauth2', quickbooks: 'oauth2', xero: 'oauth2', reddit: 'oauth2', 'google-gmail': 'oauth2',
      'google-calendar': 'oauth2', 'aws-bedrock': 'aws_sigv4', 'aws-s3': 'aws_sigv4',
    }; // prettier-ignore
    for (const [id, type] of Object.entries(expected))
      expect(unwrap(authTypeOf(get(id).auth)), id).toBe(type);
    expect(get('openai').auth).toEqual({
      header: { header_name: 'authorization', value_template: 'Bearer {{secret}}' },
    });
    expect(get('anthropic').auth).toEqual({
      header: { header_name: 'x-api-key', value_template: '{{secret}}' },
    });
    expect(get('gemini').auth).toEqual({ query: { param_name: 'key' } });
    expect(get('youtube').auth).toEqual({ query: { param_name: 'key' } });
    expect(get('telegram').auth).toEqual({ path: { prefix_template: '/bot{{secret}}' } });
    expect(get('trello').auth).toEqual({
      multi_query: [
        { param_name: 'key', value_template: '{{api_key}}' },
        { param_name: 'token', value_template: '{{token}}' },
      ],
    });
    const dd = get('datadog').auth;
    expect('multi_header' in dd && dd.multi_header.map((h) => h.header_name)).toEqual([
      'DD-API-KEY',
      'DD-APPLICATION-KEY',
    ]);
    for (const id of ['spotify', 'quickbooks', 'xero', 'reddit', 'google-gmail', 'google-calendar']) {
      const auth = get(id).auth;
      if (!('oauth2' in auth)) throw new Error(id);
      expect(auth.oauth2.grant_type).toBe('refresh_token');
      expect(auth.oauth2.token_endpoint.startsWith('https://')).toBe(true);
      expect(auth.oauth2.scopes?.length, id).toBeGreaterThan(0);
    }
    const bedrock = get('aws-bedrock').auth;
    expect(bedrock).toEqual({ aws_sigv4: { service: 'bedrock', region: 'us-east-1' } });
    expect(get('aws-bedrock').hosts).toContain('bedrock-runtime.us-east-1.amazonaws.com');
    expect(get('aws-s3').auth).toEqual({ aws_sigv4: { service: 's3', region: 'us-east-1' } });
    for (const id of ['aws-bedrock', 'aws-s3']) {
      for (const cap of get(id).capabilities) expect(cap.docs?.summary ?? '', cap.id).toMatch(/region/);
    }
  });

  it('covers the flagship capabilities with real methods and paths', () => {
    const cap = (id: string) => {
      const provider = get(id.split('/')[0] as string);
      const found = provider.capabilities.find((c) => c.id === id);
      if (!found) throw new Error(`missing ${id}`);
      return found;
    };
    expect(get('openai').capabilities.length).toBeGreaterThanOrEqual(15);
    expect(cap('openai/chat-completions').allow.methods).toContain('POST');
    expect(cap('openai/chat-completions').allow.pathPrefixes).toEqual(['/v1/chat/completions']);
    expect(cap('openai/responses').allow.methods).toEqual(['GET', 'POST', 'DELETE']);
    expect(cap('openai/transcription').allow).toEqual({
      hosts: ['api.openai.com'],
      methods: ['POST'],
      pathPrefixes: ['/v1/audio/transcriptions'],
    });
    expect(cap('openai/transcription').docs?.contentType).toBe('multipart');
    for (const name of ['embeddings', 'translation', 'speech', 'images', 'moderations', 'models', 'files', 'batches',
      'fine-tuning', 'assistants', 'vector-stores', 'uploads', 'realtime']) cap(`openai/${name}`); // prettier-ignore
    expect(cap('anthropic/messages').allow.pathPrefixes).toEqual(['/v1/messages']);
    expect(cap('github/repos').allow.hosts).toEqual(['api.github.com']);
    const examples = providers
      .flatMap((p) => p.data.capabilities)
      .filter((c) => c.docs?.example !== undefined);
    expect(examples.length).toBeGreaterThanOrEqual(10);
    for (const c of examples) {
      const ex = c.docs?.example as { method: string; path: string };
      expect(c.allow.methods, c.id).toContain(ex.method);
      const path = ex.path.split('?')[0] as string;
      expect(
        c.allow.pathPrefixes.some((p) => path.startsWith(p)),
        `${c.id} example ${ex.path}`,
      ).toBe(true);
    }
  });

  it.each([
    ['slack/chat', 'POST', '/api/chat.postMessage', true],
    ['slack/chat', 'POST', '/api/chat.postMessageX', false],
    ['slack/conversations', 'GET', '/api/conversations.history', true],
    ['gemini/models', 'POST', '/v1beta/models/gemini-2.5-flash:generateContent', true],
    ['google-places/search-text', 'POST', '/v1/places:searchText', true],
    ['google-places/details', 'GET', '/v1/places/ChIJN1t_tDeuEmsRUsoyG83frY4', true],
    ['airtable/records', 'GET', '/v0/appABC/Tasks', true],
    ['twilio/api', 'POST', '/2010-04-01/Accounts/AC123/Messages.json', true],
    ['zendesk/tickets', 'GET', '/api/v2/tickets.json', true],
    ['telegram/send-message', 'POST', '/sendMessage', true],
    ['openai/chat-completions', 'POST', '/v1/chat/completionsX', false],
    ['openai/images', 'POST', '/v1/images/generations', true],
    ['aws-bedrock/converse', 'POST', '/model/amazon.nova-lite-v1:0/converse', true],
    ['aws-s3/objects', 'PUT', '/my-bucket/path/to/key.txt', true],
  ])('%s allows %s %s: %s', (id, method, path, expected) => {
    const provider = get(id.split('/')[0] as string);
    const cap = provider.capabilities.find((c) => c.id === id);
    if (!cap) throw new Error(`missing ${id}`);
    const allowed =
      (cap.allow.methods as readonly string[]).includes(method) &&
      cap.allow.pathPrefixes.some((p) => isUnderPrefix(path, p));
    expect(allowed).toBe(expected);
  });
});

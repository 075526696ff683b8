/**
 * The HTTPS proxy's pure parts: CONNECT target parsing, proxy credentials (Proxy-Authorization: Basic),
 * placeholder detection, the raw 407/403 replies, and the CA key sealing (a key that opens only with the
 * vault key and the cert it was made for).
 */
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  parseConnectTarget,
  placeholderProviders,
  placeholderValue,
  proxyAuthRequired,
  proxyTokenFrom,
  rawReply,
} from '../../../src/front/https-proxy/connect.js';
import { createCa, LeafIssuer, openCaKey, sealCaKey } from '../../../src/front/https-proxy/ca.js';
import { checkMintInput } from '../../../src/stores/tokens/tokens.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('parseConnectTarget', () => {
  it('accepts host:port authority form, lower-cased; 443 is the bare host in policy terms', () => {
    expect(parseConnectTarget('API.OpenAI.com:443')).toEqual({
      host: 'api.openai.com',
      port: 443,
      policyHost: 'api.openai.com',
    });
    expect(parseConnectTarget('upstream.test:8443').policyHost).toBe('upstream.test:8443');
    expect(parseConnectTarget('127.0.0.1:443').host).toBe('127.0.0.1');
    expect(parseConnectTarget('[::1]:443')).toEqual({ host: '::1', port: 443, policyHost: '[::1]' });
  });

  it.each([
    '',
    'api.openai.com',
    'api.openai.com:',
    'api.openai.com:0',
    'api.openai.com:65536',
    'api.openai.com:443/path',
    'https://api.openai.com:443',
    'user@api.openai.com:443',
    '::1:443',
    '[not-ip]:443',
    'a b:443',
    '/:443',
    `${'a'.repeat(300)}:443`,
  ])('refuses %j', (target) => {
    expect(() => parseConnectTarget(target)).toThrow(/not host:port/);
  });
});

describe('proxyTokenFrom', () => {
  it('takes the token from the password (aivault:<token>) or a bare user name (<token>@)', () => {
    expect(proxyTokenFrom(`Basic ${b64('aivault:avp_abc')}`)).toBe('avp_abc');
    expect(proxyTokenFrom(`basic   ${b64('avp_abc:')}`)).toBe('avp_abc');
    expect(proxyTokenFrom(`Basic ${b64('avp_abc')}`)).toBe('avp_abc');
    expect(proxyTokenFrom(`Basic ${b64('aivault:avp_a%2Bb')}`)).toBe('avp_a+b');
  });

  it('is undefined for anything else (answered 407)', () => {
    expect(proxyTokenFrom(undefined)).toBeUndefined();
    expect(proxyTokenFrom('')).toBeUndefined();
    expect(proxyTokenFrom('Bearer avp_abc')).toBeUndefined();
    expect(proxyTokenFrom('Basic')).toBeUndefined();
    expect(proxyTokenFrom(`Basic ${b64(':')}`)).toBeUndefined();
    expect(proxyTokenFrom(`Basic ${b64('aivault:%E0%A4%A')}`)).toBeUndefined();
    expect(proxyTokenFrom('Basic not base64!')).toBeUndefined();
  });
});

describe('raw replies', () => {
  it('407 carries Proxy-Authenticate and our JSON error, and closes', () => {
    const r = proxyAuthRequired('unknown proxy token');
    const [head, body] = r.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1\.1 407 Proxy Authentication Required\r\n/);
    expect(head).toContain('\r\nProxy-Authenticate: Basic realm="aivault"');
    expect(head).toContain('\r\nConnection: close');
    expect(head).toContain(`\r\nContent-Length: ${Buffer.byteLength(body as string)}`);
    expect(JSON.parse(body as string)).toEqual({ error: 'token_invalid', message: 'unknown proxy token' });
  });

  it('403 has the error as JSON', () => {
    const r = rawReply(403, { error: 'policy_violation', message: 'no capability serves x' });
    expect(r).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(JSON.parse(r.split('\r\n\r\n')[1] as string)).toMatchObject({ error: 'policy_violation' });
  });
});

describe('placeholders', () => {
  const hex = 'ab'.repeat(16);
  it('finds the provider of each placeholder, raw or inside Basic auth', () => {
    const p = placeholderValue('openai', hex);
    expect(p).toBe(`aivault-placeholder-openai-${hex}`);
    expect(placeholderProviders(`Bearer ${p}`)).toEqual(['openai']);
    expect(placeholderProviders(`Basic ${b64(`x:${placeholderValue('github', hex)}`)}`)).toEqual(['github']);
    expect(placeholderProviders(`key=${placeholderValue('google-gemini', hex)}&a=1`)).toEqual([
      'google-gemini',
    ]);
    expect(placeholderProviders('Bearer sk-real-looking')).toEqual([]);
    expect(placeholderProviders('aivault-placeholder-openai-short')).toEqual([]);
  });
});

describe('tunnel hosts in tokens', () => {
  it('accepts host or host:port, refuses URLs and wildcards', () => {
    const base = { capabilities: ['openai/*'] };
    expect(() => checkMintInput({ ...base, tunnelHosts: ['github.com', 'example.com:8443'] })).not.toThrow();
    for (const bad of ['https://github.com', '*.github.com', 'a b', 'GitHub.com/x']) {
      expect(() => checkMintInput({ ...base, tunnelHosts: [bad] })).toThrow(/tunnel host/);
    }
  });
});

describe('CA', () => {
  const key = new Uint8Array(32).fill(7);

  it('is a CA cert; its sealed key opens only with the same vault key and cert', async () => {
    const ca = await createCa('vault-tag-0123456789');
    const cert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    const sealed = sealCaKey(key, ca.keyPem, ca.certPem);
    expect(JSON.stringify(sealed)).not.toContain('PRIVATE KEY');
    expect(openCaKey(key, sealed, ca.certPem)).toBe(ca.keyPem);
    expect(openCaKey(new Uint8Array(32).fill(8), sealed, ca.certPem)).toBeUndefined();
    expect(openCaKey(key, sealed, (await createCa('other')).certPem)).toBeUndefined();
    expect(
      openCaKey(key, { ...sealed, ct: Buffer.from('x').toString('base64') }, ca.certPem),
    ).toBeUndefined();
  });

  it('issues short-lived leaf certs per host, cached, signed by the CA', async () => {
    const ca = await createCa('vault-tag-0123456789');
    let now = Date.now();
    const issuer = await LeafIssuer.create(ca.certPem, ca.keyPem, () => now);
    const a = issuer.contextFor('api.openai.com');
    expect(issuer.contextFor('api.openai.com')).toBe(a);
    expect(issuer.contextFor('api.anthropic.com')).not.toBe(a);
    now += 23.5 * 60 * 60 * 1000; // within an hour of expiry: re-issued
    expect(issuer.contextFor('api.openai.com')).not.toBe(a);
  });
});

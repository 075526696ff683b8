import { runAuthStrategyContract } from '../../contracts/auth-strategy.case.js';
import { CLIENT_CERT, CLIENT_KEY } from './mtls-fixture.js';

runAuthStrategyContract([
  {
    name: 'header',
    spec: { header: { header_name: 'Authorization', value_template: 'Bearer {{secret}}' } },
    secrets: { secret: 'sk-live-123' },
    unknownPlaceholderSpec: { header: { header_name: 'authorization', value_template: 'Bearer {{nope}}' } },
    crlfSecrets: { secret: 'sk\r\nx-evil: 1' },
  },
  {
    name: 'query',
    spec: { query: { param_name: 'key' } },
    secrets: { secret: 'AIza secret/+&=' },
    unknownPlaceholderSpec: { query: { param_name: 'key', value_template: '{{nope}}' } },
    urlSecretValues: ['AIza%20secret%2F%2B%26%3D'],
  },
  {
    name: 'path',
    spec: { path: { prefix_template: '/bot{{secret}}' } },
    secrets: { secret: '123456:ABC-def' },
    unknownPlaceholderSpec: { path: { prefix_template: '/bot{{nope}}' } },
    urlSecretValues: ['123456:ABC-def'],
  },
  {
    name: 'basic',
    spec: { basic: {} },
    secrets: { secret: 'ACxxxx:authtoken' },
    unknownPlaceholderSpec: { basic: { username_template: '{{nope}}' } },
    crlfSecrets: { secret: 'user:pa\r\nss' },
  },
  {
    name: 'multi_header',
    spec: {
      multi_header: [
        { header_name: 'DD-API-KEY', value_template: '{{api_key}}' },
        { header_name: 'DD-APPLICATION-KEY', value_template: '{{app_key}}' },
      ],
    },
    secrets: { secret: JSON.stringify({ api_key: 'dd-api', app_key: 'dd-app' }) },
    unknownPlaceholderSpec: { multi_header: [{ header_name: 'x-k', value_template: '{{nope}}' }] },
    crlfSecrets: { secret: JSON.stringify({ api_key: 'a\nb', app_key: 'c' }) },
  },
  {
    name: 'multi_query',
    spec: {
      multi_query: [
        { param_name: 'key', value_template: '{{api_key}}' },
        { param_name: 'token', value_template: '{{token}}' },
      ],
    },
    secrets: { secret: JSON.stringify({ api_key: 'trello-key', token: 'trello-token' }) },
    unknownPlaceholderSpec: { multi_query: [{ param_name: 'key', value_template: '{{nope}}' }] },
    urlSecretValues: ['trello-key', 'trello-token'],
  },
  {
    name: 'oauth2',
    spec: {
      oauth2: { grant_type: 'refresh_token', token_endpoint: 'https://accounts.example.com/api/token' },
    },
    secrets: {
      secret: JSON.stringify({
        clientId: 'cid',
        clientSecret: 'csecret',
        refreshToken: 'rt',
        accessToken: 'at-123',
        accessTokenExpiresAtMs: Date.UTC(2030, 0, 1),
      }),
    },
    crlfSecrets: { secret: JSON.stringify({ clientId: 'cid', accessToken: 'at\r\n1' }) },
  },
  {
    name: 'aws_sigv4',
    spec: { aws_sigv4: { service: 'execute-api', region: 'us-east-1' } },
    secrets: { secret: JSON.stringify({ access_key_id: 'AKIDEXAMPLE', secret_access_key: 'sekrit' }) },
  },
  {
    name: 'hmac',
    spec: {
      hmac: {
        algorithm: 'sha256',
        header_name: 'x-signature',
        value_template: 't={{timestamp}},v1={{signature}}',
      },
    },
    secrets: { secret: 'whsec' },
    unknownPlaceholderSpec: {
      hmac: { algorithm: 'sha256', header_name: 'x-signature', value_template: '{{secret}}' },
    },
  },
  {
    name: 'mtls',
    spec: { mtls: {} },
    secrets: { secret: JSON.stringify({ cert: CLIENT_CERT, key: CLIENT_KEY }) },
  },
]);

// `aivault mcp` driven by the MCP SDK's own Client over stdio (a real spawned CLI process), against an
// autostarted aivaultd and a local HTTPS mock playing api.openai.com. Every message the client receives
// is searched for the key: the MCP server never holds one.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { stopDaemon } from '../../../src/cli/commands/daemon.js';
import { startHttpsUpstream, type HttpsUpstream } from '../../support/https-upstream.js';
import { createTestCa } from '../../support/test-ca.js';
import { CLI, assertNoSecret, isolatedEnv, registerSecret, runCli } from '../../support/run-cli.js';
import { tmpDir } from '../../support/tmp-dir.js';

const KEY = registerSecret('sk-mcp-e2e-key-5b7c9d1e3f');
const ANTHROPIC = registerSecret('sk-ant-mcp-e2e-2a4c6e8g0i');
let upstream: HttpsUpstream;
let env: Record<string, string>;
let vaultDir: string;
let client: Client;
const received: string[] = [];

beforeAll(async () => {
  upstream = await startHttpsUpstream();
  vaultDir = join(tmpDir(), 'vault');
  env = isolatedEnv(vaultDir, {
    AIVAULT_DEV_RESOLVE: ['api.openai.com', 'api.anthropic.com']
      .map((h) => `${h}=127.0.0.1:${upstream.port}`)
      .join(','),
    AIVAULT_DEV_CA_CERT_PATH: createTestCa().caCertPath,
  });
  expect((await runCli(['init', '--dev'], { env })).code).toBe(0);
  const created = await runCli(['secrets', 'create', '--name', 'OPENAI_API_KEY', '--value-stdin'], {
    env,
    input: KEY,
  });
  expect(created.code, created.stderr).toBe(0);
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [CLI, 'mcp'],
    env,
    stderr: 'pipe',
  });
  client = new Client({ name: 'aivault-test', version: '1.0.0' });
  client.fallbackNotificationHandler = async (n) => {
    received.push(JSON.stringify(n));
  };
  await client.connect(transport);
  transport.onmessage = ((orig) => (msg) => {
    received.push(JSON.stringify(msg));
    orig?.(msg);
  })(transport.onmessage);
}, 60_000);

afterAll(async () => {
  await client?.close();
  await stopDaemon(join(vaultDir, 'run', 'aivaultd.sock')).catch(() => undefined);
  await upstream.close();
  for (const m of received) assertNoSecret(m, 'an MCP message');
});

describe('aivault mcp', () => {
  it('initializes and lists every ready capability as a tool with its schema', async () => {
    expect(client.getServerVersion()).toMatchObject({ name: 'aivault' });
    expect(client.getServerCapabilities()?.tools).toMatchObject({ listChanged: true });
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    expect(names).toContain('openai__chat-completions');
    expect(names).toContain('openai__models');
    expect(names.every((n) => n.startsWith('openai__'))).toBe(true);
    const models = tools.find((t) => t.name === 'openai__models');
    expect(models?.inputSchema).toMatchObject({
      type: 'object',
      required: ['method', 'path'],
      properties: { method: { enum: ['GET', 'DELETE'] }, path: { type: 'string' } },
    });
    expect(models?.description).toContain('/v1/models');
  });

  it('a call reaches the upstream with the real key and returns the status and body', async () => {
    const before = upstream.requests.length;
    const res = await client.callTool({
      name: 'openai__models',
      arguments: {
        method: 'GET',
        path: '/v1/models',
        query: { limit: '2' },
        headers: { 'x-echo-headers': 'omit' },
      },
    });
    expect(res.isError).toBeFalsy();
    expect(upstream.requests[before]?.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(upstream.requests[before]?.query).toContain('limit=2');
    expect(res.structuredContent).toMatchObject({ status: 200, body: { method: 'GET', path: '/v1/models' } });
    expect(JSON.stringify(res.content)).toContain('HTTP 200');
  });

  it('a JSON body is sent as application/json', async () => {
    const before = upstream.requests.length;
    const res = await client.callTool({
      name: 'openai__chat-completions',
      arguments: { method: 'POST', path: '/v1/chat/completions', body: { model: 'm', messages: [] } },
    });
    expect(res.isError).toBeFalsy();
    expect(upstream.requests[before]?.headers['content-type']).toBe('application/json');
    expect(JSON.parse(upstream.requests[before]?.body ?? '{}')).toEqual({ model: 'm', messages: [] });
  });

  it('a policy refusal is isError with our error code, and nothing is sent', async () => {
    const before = upstream.requests.length;
    const res = await client.callTool({
      name: 'openai__models',
      arguments: { method: 'GET', path: '/v1/../admin' },
    });
    expect(res.isError).toBe(true);
    expect(res.structuredContent).toMatchObject({ error: 'policy_violation' });
    const auth = await client.callTool({
      name: 'openai__models',
      arguments: { method: 'GET', path: '/v1/models', headers: { authorization: 'Bearer stolen' } },
    });
    expect(auth.structuredContent).toMatchObject({ error: 'policy_violation' });
    expect(upstream.requests.length).toBe(before);
  });

  it('an upstream 401 is isError with the status', async () => {
    const res = await client.callTool({
      name: 'openai__models',
      arguments: { method: 'GET', path: '/v1/models/status/401', headers: { 'x-echo-headers': 'omit' } },
    });
    expect(res.isError).toBe(true);
    expect(res.structuredContent).toMatchObject({ status: 401 });
  });

  it('tells the client when capabilities change (a new provider key makes new tools)', async () => {
    const changed = new Promise<void>((resolve) =>
      client.setNotificationHandler(ToolListChangedNotificationSchema, async () => resolve()),
    );
    const created = await runCli(['secrets', 'create', '--name', 'ANTHROPIC_API_KEY', '--value-stdin'], {
      env,
      input: ANTHROPIC,
    });
    expect(created.code, created.stderr).toBe(0);
    await changed;
    const { tools } = await client.listTools();
    expect(tools.some((t) => t.name.startsWith('anthropic__'))).toBe(true);
  }, 30_000);
});

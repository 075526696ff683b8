/**
 * `aivault mcp`: a Model Context Protocol server on stdio (the official SDK), so MCP-speaking agents call
 * capabilities as tools. Each ready capability (one with a usable credential) is a tool named by its id
 * (`openai/chat-completions` → `openai__chat-completions`); a call goes through aivaultd like `aivault
 * invoke`, so policy, auth injection, scrubbing, rate limits and audit are the daemon's, and the result
 * holds the status and the sanitized body. The tool list is re-read every few seconds and the client is
 * told (`notifications/tools/list_changed`) when capabilities change. Nothing secret is ever in a message:
 * this process never holds a key.
 */
import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import {
  CallToolRequestSchema,
  ListToolsRequestSchema,
  type CallToolResult,
  type Tool,
} from '@modelcontextprotocol/sdk/types.js';
import { AivaultError, toWire } from '../../core/errors.js';
import type { Capability, Envelope } from '../../core/broker/types.js';
import type { CliContext, CommandOptions, CommandResult } from '../context.js';
import { optList, optString } from '../context.js';

const LIST_REFRESH_MS = 2000;
const VERSION = '0.1.0';

/** MCP tool names allow [A-Za-z0-9_-]{1,64}: `/` becomes `__`, anything else `_`. */
export function toolName(capabilityId: string): string {
  return capabilityId
    .replace(/\//g, '__')
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .slice(0, 64);
}

interface ToolEntry {
  readonly tool: Tool;
  readonly capability: Capability;
}

/** Which capabilities become tools: ready ones, optionally narrowed by `--capability id|provider/*`. */
export function selectCapabilities(ready: readonly Capability[], wanted: readonly string[]): Capability[] {
  if (wanted.length === 0) return [...ready];
  return ready.filter((c) =>
    wanted.some((w) => w === c.id || (w.endsWith('/*') && c.provider === w.slice(0, -2))),
  );
}

export function toolFor(capability: Capability, summary: string | undefined): Tool {
  const { methods, pathPrefixes, hosts } = capability.allow;
  return {
    name: toolName(capability.id),
    title: capability.id,
    description: [
      summary ?? `Call ${capability.id} through aivault (auth is injected by the broker).`,
      `Methods: ${methods.join(', ')}. Paths under: ${pathPrefixes.join(', ')}. Host: ${hosts.join(', ')}.`,
    ].join(' '),
    inputSchema: {
      type: 'object',
      properties: {
        method: { type: 'string', enum: [...methods], description: 'HTTP method' },
        path: {
          type: 'string',
          description: `request path, under one of: ${pathPrefixes.join(', ')}`,
        },
        query: {
          type: 'object',
          additionalProperties: { type: 'string' },
          description: 'query parameters',
        },
        headers: {
          type: 'object',
          additionalProperties: { type: 'string' },
          description: 'request headers (auth headers are refused: the broker injects auth)',
        },
        body: {
          description: 'request body: a string, or JSON (sent as application/json)',
          anyOf: [{ type: 'string' }, { type: 'object' }, { type: 'array' }],
        },
      },
      required: ['method', 'path'],
      additionalProperties: false,
    },
  };
}

/** Tool arguments → an invoke envelope; a malformed argument is `invalid_request`, never a guess. */
export function envelopeFor(capabilityId: string, args: Record<string, unknown>): Envelope {
  const str = (v: unknown, what: string): string => {
    if (typeof v !== 'string') throw new AivaultError('invalid_request', `${what} must be a string`);
    return v;
  };
  const dict = (v: unknown, what: string): [string, string][] => {
    if (v === undefined) return [];
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      throw new AivaultError('invalid_request', `${what} must be an object of strings`);
    }
    return Object.entries(v).map(([k, x]) => [k, str(x, `${what}.${k}`)]);
  };
  const method = str(args.method, 'method').toUpperCase();
  let path = str(args.path, 'path');
  const query = dict(args.query, 'query');
  if (query.length > 0) {
    path += (path.includes('?') ? '&' : '?') + new URLSearchParams(query).toString();
  }
  const headers: [string, string][] = dict(args.headers, 'headers');
  let body: string | undefined;
  if (typeof args.body === 'string') body = args.body;
  else if (args.body !== undefined && args.body !== null) {
    body = JSON.stringify(args.body);
    if (!headers.some(([k]) => k.toLowerCase() === 'content-type'))
      headers.push(['content-type', 'application/json']);
  }
  return {
    capability: capabilityId,
    request: {
      method,
      path,
      ...(headers.length ? { headers } : {}),
      ...(body !== undefined ? { body } : {}),
    },
  };
}

function errorResult(err: unknown): CallToolResult {
  const wire = toWire(err);
  return {
    isError: true,
    content: [{ type: 'text', text: JSON.stringify({ error: wire.error, message: wire.message }) }],
    structuredContent: { error: wire.error, message: wire.message },
  };
}

export function responseResult(status: number, body: Uint8Array): CallToolResult {
  const text = Buffer.from(body).toString('utf8');
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text);
  } catch {
    json = undefined;
  }
  return {
    ...(status >= 400 ? { isError: true } : {}),
    content: [{ type: 'text', text: `HTTP ${status}\n${text}` }],
    structuredContent: { status, ...(json !== undefined ? { body: json } : { text }) },
  };
}

export async function serve(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const wanted = optList(opts, 'capability');
  const workspaceId = optString(opts, 'workspaceId');
  const groupId = optString(opts, 'groupId');
  const context = { ...(workspaceId ? { workspaceId } : {}), ...(groupId ? { groupId } : {}) };
  const [{ runCommand }, { connectDaemon }, { registry }] = await Promise.all([
    import('../router.js'),
    import('../daemon-link.js'),
    import('../../core/registry/index.js'),
  ]);

  // The same listing `aivault capability list` gives (through the daemon in system mode).
  const readTools = async (): Promise<Map<string, ToolEntry>> => {
    const listed = await runCommand(ctx, 'capability', 'list', [], {});
    const ready = ((listed?.json as { ready?: Capability[] } | undefined)?.ready ?? []) as Capability[];
    const tools = new Map<string, ToolEntry>();
    for (const c of selectCapabilities(ready, wanted)) {
      tools.set(toolName(c.id), {
        capability: c,
        tool: toolFor(c, registry.getCapability(c.id)?.docs?.summary),
      });
    }
    return tools;
  };
  let tools = await readTools();
  const signature = (t: Map<string, ToolEntry>): string => JSON.stringify([...t.values()].map((e) => e.tool));

  const server = new Server(
    { name: 'aivault', version: VERSION },
    {
      capabilities: { tools: { listChanged: true } },
      instructions:
        'Each tool calls one aivault capability: an HTTP API whose credentials the broker injects. You never see or need a key.',
    },
  );
  server.setRequestHandler(ListToolsRequestSchema, async () => ({
    tools: [...tools.values()].map((e) => e.tool),
  }));
  server.setRequestHandler(CallToolRequestSchema, async (req): Promise<CallToolResult> => {
    const entry = tools.get(req.params.name);
    if (!entry)
      return errorResult(
        new AivaultError('capability_not_found', `no tool named ${req.params.name.slice(0, 80)}`),
      );
    try {
      const envelope = envelopeFor(entry.capability.id, req.params.arguments ?? {});
      const client = await connectDaemon(ctx.config);
      try {
        const res = await client.invoke(envelope, context);
        return responseResult(res.status, res.body);
      } finally {
        client.close();
      }
    } catch (err) {
      return errorResult(err);
    }
  });

  const refresh = setInterval(() => {
    void readTools().then(
      (next) => {
        if (signature(next) === signature(tools)) return;
        tools = next;
        void server.sendToolListChanged().catch(() => undefined);
      },
      () => undefined, // a transient read failure keeps the last list
    );
  }, LIST_REFRESH_MS);
  refresh.unref();

  const transport = new StdioServerTransport();
  const closed = new Promise<void>((resolve) => {
    transport.onclose = () => resolve();
    ctx.stdin.once('end', () => resolve());
  });
  await server.connect(transport);
  await closed;
  clearInterval(refresh);
  await server.close().catch(() => undefined);
  return { json: null, human: () => '', silent: true };
}

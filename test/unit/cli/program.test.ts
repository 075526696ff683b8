// Parsing is tested apart from behaviour: argv → (handler, positionals, options) with a recording runner.
import { describe, expect, it } from 'vitest';
import { CommanderError } from 'commander';
import { buildProgram } from '../../../src/cli/program.js';
import type { CommandOptions } from '../../../src/cli/context.js';

interface Call {
  name: string;
  positionals: readonly string[];
  opts: CommandOptions;
}

async function parse(argv: string[]): Promise<Call> {
  let call: Call | undefined;
  const program = buildProgram(async (_load, name, positionals, opts) => {
    call = { name, positionals, opts };
  });
  program.configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
  await program.parseAsync(argv, { from: 'user' });
  if (!call) throw new Error('no action ran');
  return call;
}

describe('cli program table', () => {
  it.each([
    [['status'], 'status', [], {}],
    [['status', '-v'], 'status', [], { verbose: true }],
    [['init', '--provider', 'passphrase', '--dev'], 'init', [], { provider: 'passphrase', dev: true }],
    [['rotate-master', '--new-key', 'abc'], 'rotateMaster', [], { newKey: 'abc' }],
    [['audit', '--limit', '5', '--before-ts-ms', '10'], 'audit', [], { limit: '5', beforeTsMs: '10' }],
    [
      ['secrets', 'create', '--name', 'OPENAI_API_KEY', '--value-stdin', '--alias', 'a', '--alias', 'b'],
      'create',
      [],
      { name: 'OPENAI_API_KEY', valueStdin: true, alias: ['a', 'b'], scope: 'global' },
    ],
    [
      ['secrets', 'list', '--scope', 'workspace', '--workspace-id', 'w1'],
      'list',
      [],
      { scope: 'workspace', workspaceId: 'w1' },
    ],
    [['secrets', 'delete', '--id', 'x'], 'remove', [], { id: 'x' }],
    [
      ['secrets', 'attach-group', '--id', 'x', '--workspace-id', 'w', '--group-id', 'g'],
      'attachGroup',
      [],
      { id: 'x', workspaceId: 'w', groupId: 'g' },
    ],
    [
      ['secrets', 'import', '--entry', 'A=1', '--entry', 'B=2'],
      'importEntries',
      [],
      { entry: ['A=1', 'B=2'] },
    ],
    [
      ['credential', 'create', 'c1', '--provider', 'p', '--auth', 'header', '--host', 'api.example.com'],
      'create',
      ['c1'],
      { provider: 'p', auth: 'header', host: ['api.example.com'] },
    ],
    [['credential', 'delete', 'c1'], 'remove', ['c1'], {}],
    [['credential', 'delete', 'c1', '--cascade'], 'remove', ['c1'], { cascade: true }],
    [
      ['credential', 'create', 'c2', '--provider', 'p', '--scope', 'a', '--oauth-scope', 'b'],
      'create',
      ['c2'],
      { provider: 'p', scope: ['a'], oauthScope: ['b'] },
    ],
    [
      ['credential', 'create', 'c3', '--provider', 'p', '--workspace-id', 'w', '--group-id', 'g'],
      'create',
      ['c3'],
      { provider: 'p', workspaceId: 'w', groupId: 'g' },
    ],
    [['secrets', 'list', '--scope', 'global'], 'list', [], { scope: 'global' }],
    [['secrets', 'list'], 'list', [], {}],
    [
      ['secrets', 'rotate', '--id', 'x', '--value-file', '/tmp/v'],
      'rotate',
      [],
      { id: 'x', valueFile: '/tmp/v' },
    ],
    [['capability', 'md', 'openai/models'], 'markdown', ['openai/models'], {}],
    [['capability', 'describe', 'openai/chat-completions'], 'describe', ['openai/chat-completions'], {}],
    [['capability', 'args', 'openai/x'], 'describe', ['openai/x'], {}],
    [['capability', 'shape', 'openai/x'], 'describe', ['openai/x'], {}],
    [['capability', 'inspect', 'openai/x'], 'describe', ['openai/x'], {}],
    [
      [
        'capability',
        'policy',
        'set',
        '--capability',
        'c',
        '--rate-limit-per-minute',
        '5',
        '--response-block',
        'x',
      ],
      'policySet',
      [],
      { capability: 'c', rateLimitPerMinute: '5', responseBlock: ['x'] },
    ],
    [['capability', 'call', 'openai/x', '--stream'], 'invoke', ['openai/x'], { stream: true }],
    [['capability', 'json', 'openai/x'], 'json', ['openai/x'], {}],
    [
      [
        'invoke',
        'openai/x',
        '--header',
        'a=b',
        '--multipart-field',
        'model=w',
        '--multipart-file',
        'file=/tmp/a',
      ],
      'invoke',
      ['openai/x'],
      { header: ['a=b'], multipartField: ['model=w'], multipartFile: ['file=/tmp/a'] },
    ],
    [['md', 'openai/x', '--namespace', 'data'], 'markdown', ['openai/x'], { namespace: 'data' }],
    [
      ['markdown', 'openai/x', '--exclude-field', 'usage'],
      'markdown',
      ['openai/x'],
      { excludeField: ['usage'] },
    ],
    [
      [
        'oauth',
        'setup',
        '--provider',
        'g',
        '--auth-url',
        'https://a',
        '--client-id',
        'c',
        '--redirect-uri',
        'http://127.0.0.1/cb',
      ],
      'setup',
      [],
      { provider: 'g', authUrl: 'https://a', clientId: 'c' },
    ],
    [['restart'], 'restart', [], {}],
  ])('%j → %s', async (argv, name, positionals, expected) => {
    const call = await parse(argv as string[]);
    expect(call.name).toBe(name);
    expect(call.positionals).toEqual(positionals);
    expect(call.opts).toMatchObject(expected as object);
  });

  it.each([
    [['nonsense']],
    [['secrets', 'create']],
    [['init', '--provider', 'nope']],
    [['capability', 'describe']],
  ])('rejects %j as a usage error', async (argv) => {
    await expect(parse(argv as string[])).rejects.toBeInstanceOf(CommanderError);
  });
});

// Parsing is tested apart from behaviour: argv → (handler, positionals, options) with a recording runner.
import { describe, expect, it } from 'vitest';
import { CommanderError } from 'commander';
import { TOP_LEVEL_COMMANDS, buildProgram, requestedCommand } from '../../../src/cli/program.js';
import type { CommandOptions } from '../../../src/cli/context.js';

interface Call {
  name: string;
  positionals: readonly string[];
  opts: CommandOptions;
}

async function parseWith(argv: string[], onlyNamed: boolean): Promise<Call> {
  let call: Call | undefined;
  const program = buildProgram(
    async (_load, name, positionals, opts) => {
      call = { name, positionals, opts };
    },
    onlyNamed ? argv : undefined,
  );
  program.configureOutput({ writeOut: () => undefined, writeErr: () => undefined });
  await program.parseAsync(argv, { from: 'user' });
  if (!call) throw new Error('no action ran');
  return call;
}

/** Parse with the full program and with only the named command built (what the CLI does): same result. */
async function parse(argv: string[]): Promise<Call> {
  const full = await parseWith(argv, false).catch((err: unknown) => err as Error);
  const named = await parseWith(argv, true).catch((err: unknown) => err as Error);
  if (full instanceof Error || named instanceof Error) {
    expect(named).toBeInstanceOf(Error);
    expect(full).toBeInstanceOf(Error);
    expect((named as Error).constructor).toBe((full as Error).constructor);
    throw full;
  }
  expect(named).toEqual(full);
  return full;
}

const noop = async (): Promise<void> => undefined;

describe('cli program table', () => {
  it.each([
    [['status'], 'status', [], {}],
    [['status', '-v'], 'status', [], { verbose: true }],
    [['init', '--provider', 'passphrase', '--dev'], 'init', [], { provider: 'passphrase', dev: true }],
    [['rotate-master', '--new-key', 'abc'], 'rotateMaster', [], { newKey: 'abc' }],
    [['audit', '--limit', '5', '--before-ts-ms', '10'], 'audit', [], { limit: '5', beforeTsMs: '10' }],
    [
      [
        'audit',
        '--fleet',
        '--fleet-id',
        'team',
        '--fleet-node',
        'n1',
        '--fleet-audit-postgres',
        'postgres://db/a',
      ],
      'audit',
      [],
      { limit: '200', fleet: true, fleetId: 'team', fleetNode: 'n1', fleetAuditPostgres: 'postgres://db/a' },
    ],
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

describe('building only the named command (CLI start-up)', () => {
  it('each TOP_LEVEL_COMMANDS entry registers exactly the command its names say', () => {
    for (const entry of TOP_LEVEL_COMMANDS) {
      const program = buildProgram(noop, [entry.names[0] as string]);
      expect(program.commands).toHaveLength(1);
      const cmd = program.commands[0]!;
      expect([cmd.name(), ...cmd.aliases()]).toEqual(entry.names);
    }
  });

  it('without a command (or with help / an unknown word) every command is built, in table order', () => {
    const names = TOP_LEVEL_COMMANDS.map((c) => c.names[0]);
    for (const argv of [
      undefined,
      [],
      ['--help'],
      ['-v'],
      ['help', 'invoke'],
      ['nonsense'],
      ['--', 'invoke'],
    ]) {
      expect(buildProgram(noop, argv).commands.map((c) => c.name())).toEqual(names);
    }
  });

  it('`aivault --help` lists every command; `aivault invoke --help` shows invoke’s options', async () => {
    const help = async (argv: string[]): Promise<string> => {
      let out = '';
      const program = buildProgram(noop, argv);
      program.configureOutput({ writeOut: (t) => void (out += t), writeErr: (t) => void (out += t) });
      await program.parseAsync(argv, { from: 'user' }).catch(() => undefined);
      return out;
    };
    const all = await help(['--help']);
    for (const entry of TOP_LEVEL_COMMANDS) expect(all).toContain(entry.names[0]);
    const inv = buildProgram(noop, ['invoke', '--help']).commands[0]!.helpInformation();
    expect(inv).toContain('--body-file-path');
    expect(inv).toContain('--stream');
  });

  it('the selecting word is the first non-option argument; aliases select their command', () => {
    expect(requestedCommand(['-v', 'invoke', 'openai/x'])?.names[0]).toBe('invoke');
    expect(requestedCommand(['md', 'openai/x'])?.names[0]).toBe('markdown');
    expect(requestedCommand(['json', 'openai/x', '--namespace', 'status'])?.names[0]).toBe('json');
    expect(requestedCommand(['--verbose'])).toBeUndefined();
    expect(requestedCommand(['help', 'invoke'])).toBeUndefined();
  });

  it('operator-auth flags are still added to a write command built alone', async () => {
    const call = await parseWith(['secrets', 'rotate', '--id', 'x', '--passphrase-stdin'], true);
    expect(call.opts).toMatchObject({ id: 'x', passphraseStdin: true });
  });
});

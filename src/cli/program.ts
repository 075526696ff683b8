/**
 * The one table of commands and flags. Actions lazily import their module so `aivault --help` and
 * simple commands stay fast. Parsing is tested apart from behaviour (test/unit/cli/program.test.ts).
 */
import { Command, Option } from 'commander';
import type { Runner } from './context.js';
import { APPROVAL_DECISIONS, commandKey, WRITE_COMMANDS, type CommandModule } from './command-table.js';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];
const SCOPES = ['global', 'workspace', 'group'];

export const BANNER = String.raw`
        _                   _ _
   __ _(_)_   ____ _ _   _| | |_
  / _' | \ \ / / _' | | | | | __|
 | (_| | |\ V / (_| | |_| | | |_
  \__,_|_| \_/ \__,_|\__,_|_|\__|

  Keys stay in the vault. Agents invoke capabilities.
`;

const vault: CommandModule = 'vault';
const secrets: CommandModule = 'secrets';
const credential: CommandModule = 'credential';
const capability: CommandModule = 'capability';
const invoke: CommandModule = 'invoke';
const oauth: CommandModule = 'oauth';
const daemon: CommandModule = 'daemon';
const token: CommandModule = 'token';
const runCommand: CommandModule = 'run';
const system: CommandModule = 'system';
const mcp: CommandModule = 'mcp';
const approvals: CommandModule = 'approvals';
const dashboard: CommandModule = 'dashboard';

function scopeOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--scope <scope>', 'secret scope').choices(SCOPES).default('global'))
    .option('--workspace-id <id>', 'workspace id (workspace and group scopes)')
    .option('--group-id <id>', 'group id (group scope)');
}

function invokeOptions(cmd: Command): Command {
  return cmd
    .option('--method <method>', 'HTTP method (default: the capability’s only method, else GET)')
    .option('--path <path>', 'request path (default: the capability’s path prefix)')
    .option('--header <k=v>', 'request header (repeatable)', collect)
    .option('--body <text>', 'request body')
    .option('--body-file-path <file>', 'stream the request body from a local file')
    .option('--request <json>', 'a whole request envelope as JSON')
    .option('--request-file <file>', 'read the request envelope from a file')
    .option('--multipart-field <k=v>', 'multipart text field (repeatable)', collect)
    .option('--multipart-file <k=path>', 'multipart file field (repeatable)', collect)
    .option('--credential <id>', 'use this credential')
    .option('--workspace-id <id>', 'workspace context')
    .option('--group-id <id>', 'group context')
    .option('--client-ip <ip>', 'client ip recorded in the audit log')
    .option('--timeout-ms <ms>', 'upstream timeout in milliseconds');
}

function shapeOptions(cmd: Command): Command {
  return cmd
    .option('--namespace <key>', 'wrap the output under this key')
    .option('--exclude-field <name>', 'drop this JSON field from the output (repeatable)', collect)
    .option(
      '--wrap-field <name>',
      'markdown: wrap this field in <begin>/<end> markers (repeatable)',
      collect,
    );
}

/** A Command that remembers which table entry its action runs (for the operator-auth flags). */
class KeyedCommand extends Command {
  aivaultKey: string | undefined;
  override createCommand(name?: string): KeyedCommand {
    return new KeyedCommand(name);
  }
  override action(fn: Parameters<Command['action']>[0]): this {
    const key = (fn as { aivaultKey?: unknown }).aivaultKey;
    if (typeof key === 'string') this.aivaultKey = key;
    return super.action(fn);
  }
}

/** Makes the action of one command-table entry (module + export): see buildProgram. */
type Act = (
  module: CommandModule,
  name: string,
) => ((...args: unknown[]) => Promise<void>) & { aivaultKey: string };

/** One top-level command: the words that select it, and the builder that adds it (with its subcommands). */
interface TopLevelCommand {
  /** Name, then aliases: must match what `build` registers (test/unit/cli/program.test.ts checks). */
  readonly names: readonly string[];
  readonly build: (program: Command, act: Act) => void;
}

function addStatus(program: Command, act: Act): void {
  program
    .command('status')
    .description('show vault state, provider, paths and KEK fingerprint')
    .action(act(vault, 'status'));
}

function addInit(program: Command, act: Act): void {
  program
    .command('init')
    .description('initialize the vault with a key provider')
    .addOption(
      new Option('--provider <provider>', 'key provider')
        .choices(['file', 'env', 'passphrase', 'keychain', 'macos-keychain'])
        .default('file'),
    )
    .option('--file-path <path>', 'key file (file provider)')
    .option('--env-var <name>', 'variable holding the base64 key (env provider)', 'AIVAULT_KEY')
    .option('--passphrase <value>', 'passphrase (passphrase provider; prompted when omitted)')
    .option('--keychain-service <name>', 'keychain service', 'aivault')
    .option('--keychain-account <name>', 'keychain account', 'kek')
    .option('--dev', 'allow AIVAULT_DEV_* test overrides for this vault (never for real keys)')
    .option('--force', 'replace an existing vault that has no secrets')
    .action(act(vault, 'init'));
}

function addUnlock(program: Command, act: Act): void {
  program
    .command('unlock')
    .description('unlock a passphrase vault in aivaultd')
    .option('--passphrase <value>', 'passphrase (prompted when omitted)')
    .option('--passphrase-stdin', 'read the passphrase from stdin (scripts)')
    .action(act(vault, 'unlock'));
}

function addLock(program: Command, act: Act): void {
  program.command('lock').description('lock a passphrase vault in aivaultd').action(act(vault, 'lock'));
}

function addRotateMaster(program: Command, act: Act): void {
  program
    .command('rotate-master')
    .description('re-wrap every secret key under a new master key')
    .option('--new-key <base64>', 'new 32-byte key, base64 (file/env providers)')
    .option('--new-passphrase <value>', 'switch to / rotate the passphrase provider')
    .action(act(vault, 'rotateMaster'));
}

function addResealPolicy(program: Command, act: Act): void {
  program
    .command('reseal-policy')
    .description(
      'seal the policy files of a passphrase vault (MAC under the master key) as they are now; review them first',
    )
    .action(act(vault, 'resealPolicy'));
}

function addAudit(program: Command, act: Act): void {
  program
    .command('audit')
    .description('show audit events, newest first; `audit verify` checks the log has not been edited')
    .argument('[action]', "verify: check every line's seal and chain (exit 1 names the first bad line)")
    .option('--limit <n>', 'number of events', '200')
    .option('--before-ts-ms <ms>', 'only events before this timestamp')
    .option('--fleet', "read the fleet's central audit table on PostgreSQL instead (docs/fleet.md)")
    .option(
      '--fleet-audit-postgres <url>',
      'with --fleet: the database (default: $AIVAULT_FLEET_AUDIT_POSTGRES)',
    )
    .option('--fleet-id <name>', 'with --fleet: which fleet (default: $AIVAULT_FLEET_ID or "default")')
    .option('--fleet-node <name>', 'with --fleet: only events of this host')
    .action(act(vault, 'audit'));
}

function addSecrets(program: Command, act: Act): void {
  const sec = program.command('secrets').description('manage secrets (values are never printed)');
  sec
    .command('list')
    .description('list secret metadata, marked by scope (filter with --scope/--workspace-id/--group-id)')
    .addOption(new Option('--scope <scope>', 'only secrets of this scope').choices(SCOPES))
    .option('--workspace-id <id>', 'only secrets of this workspace (workspace and group scopes)')
    .option('--group-id <id>', 'only secrets of this group (needs --workspace-id)')
    .action(act(secrets, 'list'));
  scopeOptions(
    sec
      .command('create')
      .description('create a secret (registry names pin to their provider and auto-provision a credential)')
      .requiredOption('--name <name>', 'secret name, e.g. OPENAI_API_KEY')
      .option('--value <value>', 'secret value (prefer --value-stdin or the prompt)')
      .option('--value-stdin', 'read the value from standard input')
      .option('--value-file <path>', 'read the value from a file (e.g. OAuth token JSON)')
      .option('--alias <alias>', 'alias (repeatable)', collect),
  ).action(act(secrets, 'create'));
  sec
    .command('update')
    .description('rename a secret or change its aliases')
    .requiredOption('--id <id>', 'secret id or name')
    .option('--name <name>', 'new name')
    .option('--alias <alias>', 'replace aliases (repeatable)', collect)
    .option('--clear-aliases', 'remove every alias')
    .action(act(secrets, 'update'));
  sec
    .command('rotate')
    .description('replace a secret value (new data key)')
    .requiredOption('--id <id>', 'secret id or name')
    .option('--value <value>', 'new value')
    .option('--value-stdin', 'read the value from standard input')
    .option('--value-file <path>', 'read the value from a file')
    .action(act(secrets, 'rotate'));
  sec
    .command('delete')
    .description('delete a secret')
    .requiredOption('--id <id>', 'secret id or name')
    .action(act(secrets, 'remove'));
  for (const [name, fn, desc] of [
    ['attach-group', 'attachGroup', 'make a global/workspace secret visible in a group'],
    ['detach-group', 'detachGroup', 'remove a group attachment'],
  ] as const) {
    sec
      .command(name)
      .description(desc)
      .requiredOption('--id <id>', 'secret id or name')
      .requiredOption('--workspace-id <id>', 'workspace id')
      .requiredOption('--group-id <id>', 'group id')
      .action(act(secrets, fn));
  }
  scopeOptions(
    sec
      .command('import')
      .description('import KEY=VALUE entries')
      .option('--entry <KEY=VALUE>', 'entry (repeatable)', collect)
      .option('--from-stdin', 'read KEY=VALUE lines from standard input'),
  ).action(act(secrets, 'importEntries'));
}

function addCredential(program: Command, act: Act): void {
  const cred = program.command('credential').description('manage credentials (provider + secret + auth)');
  cred
    .command('create <id>')
    .description('create a credential (registry providers inherit auth and hosts)')
    .requiredOption('--provider <provider>', 'provider id')
    .option(
      '--secret-ref <ref>',
      'vault:secret:<id> (repeatable as placeholder=ref for multi-secret)',
      collect,
    )
    .addOption(
      new Option('--auth <type>', 'auth strategy (custom providers)').choices([
        'header',
        'query',
        'path',
        'basic',
        'multi-header',
        'multi-query',
        'oauth2',
        'aws-sigv4',
        'hmac',
        'mtls',
      ]),
    )
    .option(
      '--host <host>',
      'upstream host (custom providers; per-tenant host for pattern providers)',
      collect,
    )
    .option('--header-name <name>', 'header auth: header name')
    .option('--value-template <tmpl>', 'header/query/hmac auth: value template, e.g. "Bearer {{secret}}"')
    .option('--query-param <name>', 'query auth: parameter name')
    .option('--path-prefix-template <tmpl>', 'path auth: prefix template, e.g. /bot{{secret}}')
    .option('--username-template <tmpl>', 'basic auth: username template')
    .option('--password-template <tmpl>', 'basic auth: password template')
    .option('--auth-header <K=tmpl>', 'multi-header auth entry (repeatable)', collect)
    .option('--auth-query <K=tmpl>', 'multi-query auth entry (repeatable)', collect)
    .option('--token-endpoint <url>', 'oauth2 token endpoint')
    .option('--grant-type <type>', 'oauth2 grant: refresh_token | client_credentials')
    .option('--scope <scope>', 'oauth2 scope (repeatable)', collect)
    .option('--oauth-scope <scope>', 'same as --scope (repeatable)', collect)
    .option('--workspace-id <id>', 'bind the credential to this workspace: it serves only calls made there')
    .option('--group-id <id>', 'bind the credential to this group (needs --workspace-id)')
    .option('--aws-service <name>', 'aws-sigv4 service')
    .option(
      '--aws-region <region>',
      'aws-sigv4 region (also for the registry AWS providers: their hosts move to that region)',
    )
    .option('--hmac-algorithm <alg>', 'hmac algorithm: sha256 | sha512 | sha1')
    .option(
      '--hmac-key-encoding <enc>',
      'hmac key in the secret: utf8 (default) | base64 (also Svix whsec_…)',
    )
    .action(act(credential, 'create'));
  cred.command('list').description('list credentials').action(act(credential, 'list'));
  cred
    .command('delete <id>')
    .description('delete a credential (custom capabilities on it are kept unless --cascade)')
    .option('--cascade', 'also delete the custom capabilities (and their policies) that use it, listing them')
    .action(act(credential, 'remove'));
}

function addCapability(program: Command, act: Act): void {
  const cap = program.command('capability').description('browse, create and invoke capabilities');
  cap
    .command('list')
    .description('list capabilities grouped by readiness')
    .option('--provider <provider>', 'only this provider')
    .action(act(capability, 'list'));
  cap
    .command('describe <id>')
    .aliases(['args', 'shape', 'inspect'])
    .description('show how to invoke a capability')
    .action(act(capability, 'describe'));
  cap
    .command('create <id>')
    .description('create a custom capability on a credential')
    .requiredOption('--credential <id>', 'credential id')
    .option('--method <method>', 'allowed method (repeatable)', collect)
    .option('--path <prefix>', 'allowed path prefix (repeatable)', collect)
    .option('--host <host>', 'the one allowed host (default: the credential’s host)')
    .action(act(capability, 'create'));
  cap.command('delete <id>').description('delete a custom capability').action(act(capability, 'remove'));
  cap
    .command('policy')
    .description('advanced policy')
    .command('set [id]')
    .description('set rate and size limits, the response blocklist and operator approval')
    .option('--capability <id>', 'capability id (or give it as the argument)')
    .option('--rate-limit-per-minute <n>', 'max calls per minute')
    .option('--max-request-body-bytes <n>', 'max request body size')
    .option('--max-response-body-bytes <n>', 'max response body size')
    .option('--response-block <field>', 'JSON field redacted from responses (repeatable)', collect)
    .addOption(
      new Option(
        '--approval <mode>',
        'operator approval before each call: always; once (remembered for 10 min per caller: a proxy token, or one unix-socket connection, so a one-shot `aivault invoke` asks each time; forgotten when the token is revoked or the policy set again); off',
      ).choices(['once', 'always', 'off']),
    )
    .action(act(capability, 'policySet'));
  scopeOptions(
    cap
      .command('bindings')
      .description('list capability-to-secret bindings')
      .option('--capability <id>', 'only this capability')
      .option('--consumer <name>', 'only this consumer'),
  ).action(act(capability, 'bindings'));
  scopeOptions(
    cap
      .command('bind')
      .description('bind a capability to a secret')
      .requiredOption('--capability <id>', 'capability id')
      .requiredOption('--secret-ref <ref>', 'vault:secret:<id>')
      .option('--consumer <name>', 'consumer name'),
  ).action(act(capability, 'bind'));
  scopeOptions(
    cap
      .command('unbind')
      .description('remove a binding')
      .requiredOption('--capability <id>', 'capability id')
      .option('--consumer <name>', 'consumer name'),
  ).action(act(capability, 'unbind'));
  invokeOptions(cap.command('invoke <id>').alias('call').description('invoke a capability'))
    .option('--stream', 'stream the raw response body as it arrives')
    .action(act(invoke, 'invoke'));
  shapeOptions(
    invokeOptions(cap.command('json <id>').description('invoke and print the response as JSON')),
  ).action(act(invoke, 'json'));
  shapeOptions(
    invokeOptions(
      cap.command('markdown <id>').alias('md').description('invoke and print the response as markdown'),
    ),
  ).action(act(invoke, 'markdown'));
}

function addInvoke(program: Command, act: Act): void {
  invokeOptions(program.command('invoke <id>').description('invoke a capability through the broker'))
    .option('--stream', 'stream the raw response body as it arrives')
    .action(act(invoke, 'invoke'));
}

function addJson(program: Command, act: Act): void {
  shapeOptions(
    invokeOptions(program.command('json <id>').description('invoke and print the response as JSON')),
  ).action(act(invoke, 'json'));
}

function addMarkdown(program: Command, act: Act): void {
  shapeOptions(
    invokeOptions(
      program.command('markdown <id>').alias('md').description('invoke and print the response as markdown'),
    ),
  ).action(act(invoke, 'markdown'));
}

function addOauth(program: Command, act: Act): void {
  program
    .command('oauth')
    .description('OAuth helpers (consent and code exchange stay outside the broker)')
    .command('setup')
    .description('print a consent URL (PKCE S256 + state)')
    .requiredOption('--provider <provider>', 'provider id')
    .requiredOption('--auth-url <url>', 'authorization endpoint')
    .requiredOption('--client-id <id>', 'OAuth client id')
    .requiredOption('--redirect-uri <uri>', 'redirect URI')
    .option('--scope <scope>', 'scope (repeatable)', collect)
    .option('--state <value>', 'state parameter to send (default: 32 random bytes, base64url)')
    .action(act(oauth, 'setup'));
}

function addRestart(program: Command, act: Act): void {
  program.command('restart').description('restart aivaultd').action(act(daemon, 'restart'));
}

function addToken(program: Command, act: Act): void {
  const tok = program
    .command('token')
    .description('network tokens for the loopback HTTP listener (proxy avp_…, operator avo_…)');
  tok
    .command('mint')
    .description('mint a short-lived proxy token (printed once)')
    .option('--capability <id>', 'capability id or provider/* (repeatable)', collect)
    .option('--credential <id>', 'pin the token to this credential')
    .option('--ttl <ttl>', 'lifetime: 900, 30s, 15m, 2h, 1d (default 15m, max 7d)')
    .option('--workspace-id <id>', 'workspace context')
    .option('--group-id <id>', 'group context')
    .option('--label <text>', 'free-text label shown by token list')
    .option(
      '--tunnel-host <host>',
      'HTTPS proxy: allow a blind tunnel (no key injection) to this host[:port] (repeatable)',
      collect,
    )
    .action(act(token, 'mint'));
  tok.command('list').description('list tokens (never their values)').action(act(token, 'list'));
  tok.command('revoke <id>').description('revoke a token by id').action(act(token, 'revoke'));
  tok
    .command('operator')
    .description('operator tokens for the HTTP admin API')
    .command('create')
    .description('create an operator token (printed once)')
    .option('--name <name>', 'a name for the token')
    .option('--ttl <ttl>', 'lifetime (default: until revoked)')
    .action(act(token, 'operatorCreate'));
}

function addRun(program: Command, act: Act): void {
  program
    .command('run')
    .description(
      'run a command through the broker with no real key: HTTPS_PROXY (+ vault CA, placeholder keys) for unchanged tools, AIVAULT_BASE_URL/AIVAULT_TOKEN',
    )
    .argument('<command...>', 'the command, after --')
    .option(
      '--capability <id>',
      'capability id or provider/* (repeatable; default: every provider with a credential)',
      collect,
    )
    .option('--credential <id>', 'pin the token to this credential')
    .option('--ttl <ttl>', 'token lifetime (default 15m)')
    .option('--workspace-id <id>', 'workspace context')
    .option('--group-id <id>', 'group context')
    .option('--passphrase <value>', 'vault passphrase, to mint the token (prompted when needed)')
    .option(
      '--tunnel-host <host>',
      'let the child open a plain tunnel to this host[:port] through the HTTPS proxy, without key injection (repeatable)',
      collect,
    )
    .option('--no-proxy', 'no HTTPS proxy: only AIVAULT_BASE_URL/AIVAULT_TOKEN and the SDK base URLs')
    .action(act(runCommand, 'run'));
}

function addCa(program: Command, act: Act): void {
  program
    .command('ca')
    .description("the vault's local CA (HTTPS proxy)")
    .command('path')
    .description('print the path of the CA certificate clients trust')
    .action(act(runCommand, 'caPath'));
}

function addMcp(program: Command, act: Act): void {
  program
    .command('mcp')
    .description('serve ready capabilities as MCP tools on stdio (for Claude Code and other MCP clients)')
    .option('--capability <id>', 'only this capability or provider/* (repeatable)', collect)
    .option('--workspace-id <id>', 'workspace context for every call')
    .option('--group-id <id>', 'group context for every call')
    .action(act(mcp, 'serve'));
}

function addDashboard(program: Command, act: Act): void {
  program
    .command('dashboard')
    .description(
      'print a one-time login URL (valid once, for 2 minutes) to the operator dashboard aivaultd serves on loopback: capabilities, live calls, audit, rate limits, tokens, approvals',
    )
    .option('--open', 'also open the URL in a browser (xdg-open / open)')
    .option('--passphrase <value>', 'vault passphrase (a passphrase vault; prompted when needed)')
    .action(act(dashboard, 'open'));
}

function addSystem(program: Command, act: Act): void {
  const sys = program
    .command('system')
    .description('system mode (Linux, root): aivaultd as a dedicated user, vault out of the agents’ reach');
  sys
    .command('install')
    .description('create the aivault user/group, /var/lib/aivault vault, sockets and the systemd unit')
    .option('--user <name>', 'daemon user', 'aivault')
    .option('--group <name>', 'group of the agent users allowed to invoke (caller socket)', 'aivault')
    .option('--root <dir>', 'install under this directory instead of / (tests, images)')
    .option('--no-systemd', 'do not install or start the systemd unit (containers: use `aivault system run`)')
    .option('--dev', 'create a dev vault (honours AIVAULT_DEV_* test overrides; never for real keys)')
    .action(act(system, 'install'));
  sys
    .command('uninstall')
    .description('stop and remove the unit, sockets and config (the vault is kept unless --purge)')
    .option('--root <dir>', 'the directory given to install --root')
    .option('--purge', 'also delete the vault and the aivault user')
    .action(act(system, 'uninstall'));
  sys
    .command('run')
    .description('run aivaultd in the foreground as the aivault user (containers without systemd)')
    .option('--root <dir>', 'the directory given to install --root')
    .action(act(system, 'run'));
  sys
    .command('status')
    .description('show the system-mode layout and whether each part is in place')
    .option('--root <dir>', 'the directory given to install --root')
    .action(act(system, 'status'));
}

function addApprovals(program: Command, act: Act): void {
  program
    .command('approvals')
    .description('calls waiting for operator approval (capability policy --approval); -v: JSON')
    .option('--watch', 'keep watching: print each new waiting call; on a terminal, ask approve/deny')
    .action(act(approvals, 'list'));
}

function addApprove(program: Command, act: Act): void {
  program
    .command('approve <id>')
    .description('approve a call waiting for approval (operator action)')
    .action(act(approvals, 'approve'));
}

function addDeny(program: Command, act: Act): void {
  program
    .command('deny <id>')
    .description('deny a call waiting for approval: it fails with approval_denied (operator action)')
    .action(act(approvals, 'deny'));
}

/**
 * Every top-level command, in help order. `aivault <name> …` builds only that entry (commander's
 * option parsing and help objects for ~80 commands were ~10 ms of each CLI start, issue 12); no
 * command, `help`, or an unknown word builds them all (help lists everything, suggestions work).
 * Adding a command: write its `add…` builder above and add one line here.
 */
export const TOP_LEVEL_COMMANDS: readonly TopLevelCommand[] = [
  { names: ['status'], build: addStatus },
  { names: ['init'], build: addInit },
  { names: ['unlock'], build: addUnlock },
  { names: ['lock'], build: addLock },
  { names: ['rotate-master'], build: addRotateMaster },
  { names: ['reseal-policy'], build: addResealPolicy },
  { names: ['audit'], build: addAudit },
  { names: ['secrets'], build: addSecrets },
  { names: ['credential'], build: addCredential },
  { names: ['capability'], build: addCapability },
  { names: ['invoke'], build: addInvoke },
  { names: ['json'], build: addJson },
  { names: ['markdown', 'md'], build: addMarkdown },
  { names: ['oauth'], build: addOauth },
  { names: ['restart'], build: addRestart },
  { names: ['token'], build: addToken },
  { names: ['approvals'], build: addApprovals },
  { names: ['approve'], build: addApprove },
  { names: ['deny'], build: addDeny },
  { names: ['run'], build: addRun },
  { names: ['ca'], build: addCa },
  { names: ['mcp'], build: addMcp },
  { names: ['dashboard'], build: addDashboard },
  { names: ['system'], build: addSystem },
];

/** The entry selected by the first word of `argv` that is not an option, if any. */
export function requestedCommand(argv: readonly string[]): TopLevelCommand | undefined {
  for (const arg of argv) {
    if (arg === '--') return undefined;
    if (arg.startsWith('-')) continue; // the only global option (-v/--verbose) takes no value
    return TOP_LEVEL_COMMANDS.find((c) => c.names.includes(arg));
  }
  return undefined;
}

/**
 * Build the program. `run` executes an action: (module loader, export name, positional args, options).
 * With `argv`, only the command it names is built (see TOP_LEVEL_COMMANDS); without, all of them.
 */
export function buildProgram(run: Runner, argv?: readonly string[]): Command {
  const program = new KeyedCommand('aivault')
    .description(
      'Local vault + policy-enforcing broker for AI agents: callers invoke capabilities, never keys.',
    )
    .option('-v, --verbose', 'print full JSON output')
    .showSuggestionAfterError()
    .configureHelp({ sortSubcommands: false });
  program.addHelpText('before', BANNER);

  const act: Act = (module, name) => {
    const action = (...args: unknown[]): Promise<void> => {
      const cmd = args[args.length - 1] as Command;
      const positionals = args.slice(0, -2).filter((a) => a !== undefined) as string[];
      return run(module, name, positionals, cmd.optsWithGlobals());
    };
    return Object.assign(action, { aivaultKey: commandKey(module, name) });
  };
  // Every operator action takes the operator's proof on a passphrase vault: a prompt on the terminal,
  // or for scripts --passphrase-stdin / --passphrase. Added here, once, from the command table.
  const addOperatorAuth = (cmd: Command): void => {
    for (const sub of cmd.commands) addOperatorAuth(sub);
    const key = cmd instanceof KeyedCommand ? cmd.aivaultKey : undefined;
    if (key === undefined || !(WRITE_COMMANDS.has(key) || APPROVAL_DECISIONS.has(key))) return;
    if (!cmd.options.some((o) => o.long === '--passphrase')) {
      cmd.option('--passphrase <value>', 'vault passphrase (operator authentication; prompted when needed)');
    }
    cmd.option('--passphrase-stdin', 'read the vault passphrase (operator authentication) from stdin');
  };

  const only = argv === undefined ? undefined : requestedCommand(argv);
  for (const entry of TOP_LEVEL_COMMANDS) if (only === undefined || only === entry) entry.build(program, act);

  addOperatorAuth(program);

  // Parser errors must surface as exceptions (main maps them to exit 2), never as process.exit deep inside.
  const throwOnExit = (cmd: Command): void => {
    cmd.exitOverride();
    cmd.commands.forEach(throwOnExit);
  };
  throwOnExit(program);
  return program;
}

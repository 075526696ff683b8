/**
 * Which module serves each CLI command, and which role may run it. One table for the three places that
 * must agree: the parser (program.ts), the CLI's router (main.ts: a write goes to the daemon when one
 * serves the vault) and the daemon's gate (operator-executor.ts: a caller socket runs reads only, a
 * write needs operator authentication). A command missing from both sets runs only in the CLI process
 * (invoke, run, init, status, unlock/lock, system …).
 */
export const COMMAND_MODULES = Object.freeze({
  vault: () => import('./commands/vault.js'),
  secrets: () => import('./commands/secrets.js'),
  credential: () => import('./commands/credential.js'),
  capability: () => import('./commands/capability.js'),
  invoke: () => import('./commands/invoke.js'),
  oauth: () => import('./commands/oauth.js'),
  daemon: () => import('./commands/daemon.js'),
  token: () => import('./commands/token.js'),
  run: () => import('./commands/run.js'),
  system: () => import('./commands/system.js'),
  mcp: () => import('./commands/mcp.js'),
  approvals: () => import('./commands/approvals.js'),
  dashboard: () => import('./commands/dashboard.js'),
});

export type CommandModule = keyof typeof COMMAND_MODULES;

/** `module.export`, e.g. `secrets.create`. */
export type CommandKey = `${CommandModule}.${string}`;

export const commandKey = (module: CommandModule, name: string): CommandKey => `${module}.${name}`;

/**
 * Operator actions: they change secrets, credentials, capabilities, policy, bindings or tokens. While
 * aivaultd runs they are executed by the daemon (the only writer of the vault), and they need operator
 * authentication: the passphrase on a passphrase vault, the operator socket in system mode.
 */
export const WRITE_COMMANDS: ReadonlySet<string> = new Set<CommandKey>([
  'vault.rotateMaster',
  'vault.resealPolicy',
  'secrets.create',
  'secrets.update',
  'secrets.rotate',
  'secrets.remove',
  'secrets.attachGroup',
  'secrets.detachGroup',
  'secrets.importEntries',
  'credential.create',
  'credential.remove',
  'capability.create',
  'capability.remove',
  'capability.policySet',
  'capability.bind',
  'capability.unbind',
  'token.mint',
  'token.revoke',
  'token.operatorCreate',
]);

/**
 * Metadata reads: a caller (agent) may run them. In system mode the caller cannot read the vault
 * directory, so the daemon answers them on the caller socket. `vault.audit` is an operator read there.
 */
export const READ_COMMANDS: ReadonlySet<string> = new Set<CommandKey>([
  'secrets.list',
  'credential.list',
  'capability.list',
  'capability.describe',
  'capability.bindings',
  'token.list',
]);

/** Operator-only reads: allowed on the operator socket, refused on the caller socket. */
export const OPERATOR_READ_COMMANDS: ReadonlySet<string> = new Set<CommandKey>([
  'vault.audit',
  'approvals.list',
]);

/**
 * Pending approvals (issue 16) live in aivaultd's main thread, not in the vault: these commands always go
 * to the daemon, which checks the operator's proof like any other command and then answers them there.
 */
export const APPROVAL_COMMANDS: ReadonlySet<string> = new Set<CommandKey>([
  'approvals.list',
  'approvals.approve',
  'approvals.deny',
]);

/** Approving or denying a call: operator actions that need the operator's proof like a write. */
export const APPROVAL_DECISIONS: ReadonlySet<string> = new Set<CommandKey>([
  'approvals.approve',
  'approvals.deny',
]);

/** Everything the daemon will execute for a `command` frame. */
export function daemonRunnable(key: string): boolean {
  return (
    WRITE_COMMANDS.has(key) ||
    READ_COMMANDS.has(key) ||
    OPERATOR_READ_COMMANDS.has(key) ||
    APPROVAL_COMMANDS.has(key)
  );
}

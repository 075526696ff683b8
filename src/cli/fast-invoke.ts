/**
 * The CLI's fast path for `aivault invoke|json|markdown|md <id> [flags]` with a running daemon (CLI,
 * main thread). Why: commander, the command table and the ESM loader were most of `aivault invoke`'s
 * start-up (issue 12: target 1.3× `node -e 0`); an agent calls it once per request. This path loads only
 * the config, the generated allow-list table, the frame codec (msgpackr) and the unix-socket client.
 *
 * It handles the common shape only and hands anything else to the full program (src/cli/main.ts)
 * BEFORE anything is sent or printed: an unknown or repeated flag, a value that starts with `-`,
 * `-v`/`--help`/`--stream`/`--request…`/file and multipart bodies, a custom capability (not in the
 * generated table: the full path reads the vault's catalog), AIVAULTD_DISABLE, system mode, any usage
 * error, and a daemon that does not answer (the full path autostarts it). Once the frame is sent, the
 * outcome is printed exactly as the full program prints it (same result shaping, same error rendering).
 */
import { ERRORS, toWire } from '../core/errors.js';
import { loadConfig, noColorRequested } from '../core/config/env.js';
import { connect, type DaemonClient } from '../core/protocol/client.js';
import { buildEnvelope, type CapabilityDefaults } from './envelope-args.js';
import { detectColor, painter, renderError } from './output.js';
import { parseCount, type CommandOptions } from './context.js';
import { contextFrom, shapeInvokeResult, type Mode } from './invoke-result.js';

const MODES: Readonly<Record<string, Mode>> = {
  invoke: 'raw',
  json: 'json',
  markdown: 'markdown',
  md: 'markdown',
};

/** Flags this path understands: name → [option key, repeatable]. The rest go to the full program. */
const FLAGS: Readonly<Record<string, readonly [string, boolean]>> = {
  '--method': ['method', false],
  '--path': ['path', false],
  '--header': ['header', true],
  '--body': ['body', false],
  '--credential': ['credential', false],
  '--workspace-id': ['workspaceId', false],
  '--group-id': ['groupId', false],
  '--client-ip': ['clientIp', false],
  '--timeout-ms': ['timeoutMs', false],
};
const SHAPE_FLAGS: Readonly<Record<string, readonly [string, boolean]>> = {
  '--namespace': ['namespace', false],
  '--exclude-field': ['excludeField', true],
  '--wrap-field': ['wrapField', true],
};

/** argv → mode, capability id and options as commander would give them; undefined: not ours. */
export function parseFastArgv(
  argv: readonly string[],
): { mode: Mode; id: string; opts: CommandOptions } | undefined {
  const mode = MODES[argv[0] ?? ''];
  if (mode === undefined) return undefined;
  let id: string | undefined;
  const opts: Record<string, string | string[]> = {};
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('-')) {
      if (id !== undefined) return undefined;
      id = arg;
      continue;
    }
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const flag = FLAGS[name] ?? (mode === 'raw' ? undefined : SHAPE_FLAGS[name]);
    if (flag === undefined) return undefined;
    let value: string | undefined;
    if (eq > 0) value = arg.slice(eq + 1);
    else {
      value = argv[++i];
      if (value === undefined || value.startsWith('-')) return undefined;
    }
    const [key, repeatable] = flag;
    if (repeatable) {
      const list = opts[key];
      opts[key] = Array.isArray(list) ? [...list, value] : [value];
    } else if (key in opts) return undefined;
    else opts[key] = value;
  }
  if (id === undefined || id === '') return undefined;
  return { mode, id, opts };
}

async function defaultsFor(
  id: string,
  opts: CommandOptions,
): Promise<CapabilityDefaults | false | undefined> {
  if (typeof opts.method === 'string' && typeof opts.path === 'string') return undefined;
  const { CAPABILITY_DEFAULTS } = await import('../core/registry/defaults.generated.js');
  return Object.hasOwn(CAPABILITY_DEFAULTS, id) ? CAPABILITY_DEFAULTS[id] : false;
}

/** Run the call if this path can; the exit code, or undefined to run the full program instead. */
export async function tryFastInvoke(argv: readonly string[]): Promise<number | undefined> {
  const parsed = parseFastArgv(argv);
  if (!parsed) return undefined;
  const { mode, id, opts } = parsed;
  let client: DaemonClient;
  let send: () => ReturnType<DaemonClient['invoke']>;
  let color: boolean;
  try {
    const config = loadConfig();
    if (config.daemonDisable || config.system) return undefined;
    const defaults = await defaultsFor(id, opts);
    if (defaults === false) return undefined;
    const envelope = buildEnvelope(id, opts, defaults);
    const context = contextFrom(opts);
    const timeoutRaw = typeof opts.timeoutMs === 'string' ? opts.timeoutMs : undefined;
    const timeoutMs = timeoutRaw === undefined ? undefined : parseCount(timeoutRaw, '--timeout-ms');
    color = detectColor(process.stdout, config.noColor);
    client = await connect({ socketPath: config.socketPath, connectTimeoutMs: 2000 });
    send = () => client.invoke(envelope, context, timeoutMs !== undefined ? { timeoutMs } : {});
  } catch {
    return undefined; // nothing sent yet: the full program reports it (or autostarts the daemon)
  }
  try {
    const result = shapeInvokeResult(await send(), opts, mode);
    if (result.raw) process.stdout.write(result.raw);
    else {
      const text = result.human(painter(color));
      if (text !== '') process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
    }
    if (result.notice) process.stderr.write(`${painter(color).yellow(result.notice)}\n`);
    return result.exitCode ?? 0;
  } catch (err) {
    // As src/cli/main.ts renders an error (no -v on this path).
    const wire = toWire(err);
    process.stderr.write(`${renderError(wire, painter(detectColor(process.stderr, noColorRequested())))}\n`);
    if (wire.error === 'internal') process.stderr.write('This is a bug in aivault; please report it.\n');
    return ERRORS[wire.error].exit;
  } finally {
    client.close();
  }
}

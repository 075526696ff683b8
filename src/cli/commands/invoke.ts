/**
 * `aivault invoke|json|markdown` (and `capability invoke|call|json|markdown`): build the envelope, send it
 * to aivaultd (or run in-process with AIVAULTD_DISABLE=1), print the sanitized body. Upstream response
 * headers are never printed in any mode: they can carry identifiers or cookies into agent context.
 */
import { once } from 'node:events';
import { AivaultError } from '../../core/errors.js';
import type { Envelope, RequestContext } from '../../core/broker/types.js';
import type { CliContext, CommandOptions, CommandResult } from '../context.js';
import { optBool, optString, parseCount } from '../context.js';
import { buildEnvelope, type CapabilityDefaults } from '../envelope-args.js';
import {
  contextFrom,
  scrubNotice,
  shapeInvokeResult,
  upstreamFailed,
  type InvokeAnswer,
  type Mode,
} from '../invoke-result.js';

async function capabilityDefaults(
  ctx: CliContext,
  id: string,
  opts: CommandOptions,
): Promise<CapabilityDefaults | undefined> {
  if (optString(opts, 'request') !== undefined || optString(opts, 'requestFile') !== undefined)
    return undefined;
  if (optString(opts, 'method') !== undefined && optString(opts, 'path') !== undefined) return undefined;
  // Not the registry itself: compiling and freezing it was ~15% of `aivault invoke`'s start-up; the
  // generated table holds just the allow lists (scripts/gen-registry.mjs).
  const { CAPABILITY_DEFAULTS } = await import('../../core/registry/defaults.generated.js');
  if (Object.hasOwn(CAPABILITY_DEFAULTS, id)) return CAPABILITY_DEFAULTS[id];
  // In system mode a caller cannot read the vault: the daemon resolves the capability (give --method
  // and --path for a custom one).
  if (ctx.config.system?.role === 'caller') return undefined;
  const { loadBrokerView } = await import('./broker-view.js');
  const custom = (await loadBrokerView(ctx.config)).snapshot.capabilities.get(id);
  if (!custom)
    throw new AivaultError(
      'capability_not_found',
      `no capability named ${id} (see: aivault capability list)`,
    );
  return custom.allow;
}

async function writeOut(stream: NodeJS.WriteStream, data: Uint8Array): Promise<void> {
  if (!stream.write(data)) await once(stream, 'drain');
}

async function streamInvoke(
  ctx: CliContext,
  envelope: Envelope,
  context: RequestContext,
  timeoutMs: number | undefined,
): Promise<CommandResult> {
  if (ctx.config.daemonDisable) {
    throw new AivaultError('usage', '--stream needs aivaultd; unset AIVAULTD_DISABLE to stream');
  }
  const { connectDaemon } = await import('../daemon-link.js');
  const client = await connectDaemon(ctx.config);
  try {
    const call = client.stream(envelope, context, {
      ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      ...(ctx.verbose ? { timing: true } : {}),
    });
    const head = await call.head;
    for await (const chunk of call.body) await writeOut(ctx.stdout, chunk);
    // -v: the body is on stdout as it came; the daemon's breakdown goes to stderr with the notices.
    const timing = ctx.verbose ? call.timing() : undefined;
    const other = [
      upstreamFailed(head.status) ? `upstream returned HTTP ${head.status}` : undefined,
      timing ? `timing: ${JSON.stringify(timing)}` : undefined,
    ]
      .filter((n) => n !== undefined)
      .join('\n');
    return {
      json: undefined,
      human: () => '',
      silent: true,
      exitCode: upstreamFailed(head.status) ? 1 : 0,
      ...scrubNotice(call.scrubbed(), other || undefined),
    };
  } finally {
    client.close();
  }
}

async function execute(
  ctx: CliContext,
  pos: readonly string[],
  opts: CommandOptions,
  mode: Mode,
): Promise<CommandResult> {
  const id = pos[0] ?? '';
  const envelope = buildEnvelope(id, opts, await capabilityDefaults(ctx, id, opts));
  const context = contextFrom(opts);
  const timeoutRaw = optString(opts, 'timeoutMs');
  const timeoutMs = timeoutRaw === undefined ? undefined : parseCount(timeoutRaw, '--timeout-ms');
  if (mode === 'raw' && optBool(opts, 'stream')) return streamInvoke(ctx, envelope, context, timeoutMs);

  let res: InvokeAnswer;
  if (ctx.config.daemonDisable) {
    const { refuseInProcessWhileServed } = await import('../daemon-link.js');
    await refuseInProcessWhileServed(ctx.config);
    const [{ invokeInProcess }, { Vault }] = await Promise.all([
      import('../../request-worker/pipeline/in-process.js'),
      import('../../stores/vault/index.js'),
    ]);
    const vault = await Vault.open(ctx.config);
    try {
      res = await invokeInProcess(
        ctx.config,
        vault,
        envelope,
        { ...context, localFiles: true },
        timeoutMs !== undefined ? { timeoutMs } : {},
      );
    } finally {
      vault.close();
    }
  } else {
    const { connectDaemon } = await import('../daemon-link.js');
    const client = await connectDaemon(ctx.config);
    try {
      // -v prints the daemon's per-stage breakdown (policy, secret, upstream, total) with the JSON.
      res = await client.invoke(envelope, context, {
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
        ...(ctx.verbose ? { timing: true } : {}),
      });
    } finally {
      client.close();
    }
  }
  return shapeInvokeResult(res, opts, mode);
}

export const invoke = (
  ctx: CliContext,
  pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> => execute(ctx, pos, opts, 'raw');
export const json = (ctx: CliContext, pos: readonly string[], opts: CommandOptions): Promise<CommandResult> =>
  execute(ctx, pos, opts, 'json');
export const markdown = (
  ctx: CliContext,
  pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> => execute(ctx, pos, opts, 'markdown');

/**
 * `aivault invoke|json|markdown`: the call context from the flags, and a daemon's (or the in-process
 * pipeline's) answer as the command's result (pure; CLI main thread). Shared by the command
 * (src/cli/commands/invoke.ts) and the bin's fast path (src/cli/fast-invoke.ts), which must print exactly
 * the same; kept apart from the command so the fast path does not load the command's lazy imports.
 */
import type { Timings } from '../core/threads/server-timing.js';
import { AivaultError } from '../core/errors.js';
import type { RequestContext } from '../core/broker/types.js';
import type { CommandOptions, CommandResult } from './context.js';
import { optList, optString } from './context.js';
import { shapeJson, toMarkdown } from './response-format.js';
import { toJson } from './output.js';

export type Mode = 'raw' | 'json' | 'markdown';

export function contextFrom(opts: CommandOptions): RequestContext {
  const workspaceId = optString(opts, 'workspaceId');
  const groupId = optString(opts, 'groupId');
  const clientIp = optString(opts, 'clientIp');
  return {
    ...(workspaceId ? { workspaceId } : {}),
    ...(groupId ? { groupId } : {}),
    ...(clientIp ? { clientIp } : {}),
  };
}
export function upstreamFailed(status: number): boolean {
  return status >= 400;
}
/** One stderr line when the daemon replaced reflected secret values (joined with any other notice). */
export function scrubNotice(scrubbed: number | undefined, other?: string): { notice?: string } {
  const lines = other ? [other] : [];
  if (scrubbed)
    lines.push(
      `warning: the upstream response reflected a secret; ${scrubbed} occurrence(s) were redacted (see aivault audit)`,
    );
  return lines.length > 0 ? { notice: lines.join('\n') } : {};
}
/** A daemon's (or the in-process pipeline's) answer as the command's result. */
export type InvokeAnswer = {
  status: number;
  body: Uint8Array;
  scrubbed?: number;
  auditError?: string;
  /** Milliseconds per stage as the daemon measured them (asked for with -v). */
  timing?: Timings;
};

/** The command result for one answer (shared with the CLI's fast path, src/cli/fast-invoke.ts). */
export function shapeInvokeResult(res: InvokeAnswer, opts: CommandOptions, mode: Mode): CommandResult {
  const failed = upstreamFailed(res.status);
  const notice =
    [
      failed ? `upstream returned HTTP ${res.status}` : undefined,
      res.auditError !== undefined ? `warning: audit event not written: ${res.auditError}` : undefined,
    ]
      .filter((n) => n !== undefined)
      .join('\n') || undefined;
  const text = Buffer.from(res.body.buffer, res.body.byteOffset, res.body.byteLength).toString('utf8');

  if (mode === 'raw') {
    return {
      json: { status: res.status, body: text, ...(res.timing ? { timing: res.timing } : {}) },
      human: () => text,
      raw: res.body,
      exitCode: failed ? 1 : 0,
      ...scrubNotice(res.scrubbed, notice),
    };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AivaultError(
      'invalid_request',
      `the upstream response (HTTP ${res.status}) is not JSON; use aivault invoke for raw output`,
    );
  }
  const shape = {
    excludeFields: optList(opts, 'excludeField'),
    wrapFields: optList(opts, 'wrapField'),
    ...(optString(opts, 'namespace') ? { namespace: optString(opts, 'namespace') } : {}),
  };
  const shaped = mode === 'json' ? shapeJson(parsed, shape) : toMarkdown(parsed, shape);
  return {
    json: {
      status: res.status,
      body: mode === 'json' ? shaped : parsed,
      ...(res.timing ? { timing: res.timing } : {}),
    },
    human: () => (mode === 'json' ? toJson(shaped) : (shaped as string)),
    exitCode: failed ? 1 : 0,
    ...scrubNotice(res.scrubbed, notice),
  };
}

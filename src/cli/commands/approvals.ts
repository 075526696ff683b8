/**
 * `aivault approvals [--watch]`, `aivault approve <id>`, `aivault deny <id>` (CLI process): calls that
 * wait for the operator's approval (capability policy `approval`). The pending list lives in aivaultd's
 * main thread, so without `--watch` the router sends these commands to the daemon (command-table.ts
 * APPROVAL_COMMANDS) and the functions below only run when no daemon is there. `--watch` runs here: it
 * long-polls the daemon's list and, on a terminal, asks approve/deny for each new call.
 */
import { createInterface } from 'node:readline/promises';
import { AivaultError, isAivaultError } from '../../core/errors.js';
import type { CliContext, CommandOptions, CommandResult } from '../context.js';
import { optBool } from '../context.js';
import { escapeControl } from '../output.js';
import type { ApprovalView } from '../../front/approval-ops.js';
import { callerLabel } from '../../core/broker/approval-caller.js';
import type { DaemonClient } from '../../core/protocol/client.js';

function noDaemon(): AivaultError {
  return new AivaultError(
    'daemon_unavailable',
    'no aivaultd serves this vault: calls wait for approval only in a running daemon',
  );
}

export async function approve(): Promise<CommandResult> {
  return Promise.reject(noDaemon());
}

export async function deny(): Promise<CommandResult> {
  return Promise.reject(noDaemon());
}

export async function list(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  if (!optBool(opts, 'watch')) throw noDaemon();
  return watch(ctx, opts);
}

/** One line per pending call: what will be sent, never a secret (caller input escaped). */
export function describePending(a: ApprovalView): string {
  const body = a.bodyBytes < 0 ? 'a file body' : `${a.bodyBytes} B body`;
  // An older daemon sends no `caller`: the label is then plain `socket`.
  const caller = escapeControl(callerLabel(a.callerTokenId, a.caller));
  return `${a.id}  ${escapeControl(a.capability)}  ${a.method} ${escapeControl(a.host)}${escapeControl(a.path)}  (${body}, ${caller}, via ${a.transport}, ${a.mode})`;
}

async function watch(ctx: CliContext, opts: CommandOptions): Promise<CommandResult> {
  const { connectDaemon } = await import('../daemon-link.js');
  let client: DaemonClient;
  try {
    client = await connectDaemon(ctx.config, { autostart: false });
  } catch (err) {
    if (isAivaultError(err) && err.code === 'daemon_unavailable') throw noDaemon();
    throw err;
  }
  const interactive = ctx.stdin.isTTY === true && ctx.stdout.isTTY === true;
  // A decision needs the operator's proof (the passphrase on a passphrase vault): asked once, up front.
  let passphrase: string | undefined;
  if (interactive) {
    const { operatorPassphrase } = await import('../router.js');
    passphrase = await operatorPassphrase(ctx, opts);
  }
  const rl = interactive ? createInterface({ input: ctx.stdin, output: ctx.stdout }) : undefined;
  const seen = new Set<string>();
  const write = (line: string): void => {
    ctx.stdout.write(`${line}\n`);
  };
  write(ctx.p.dim('Watching for calls that wait for approval (Ctrl-C to stop)…'));
  try {
    let known: string[] = [];
    for (;;) {
      const data = await client.command({
        command: 'approvals.list',
        args: [],
        opts: { wait: known.join(',') },
        color: ctx.color,
      });
      const rows = JSON.parse(String(data.json)) as ApprovalView[];
      known = rows.map((r) => r.id);
      for (const r of rows) {
        if (seen.has(r.id)) continue;
        seen.add(r.id);
        write(ctx.verbose ? JSON.stringify(r) : `${ctx.p.yellow('pending')} ${describePending(r)}`);
        if (!rl) continue;
        const answer = (await rl.question(`Approve ${r.id}? [y/N] `)).trim().toLowerCase();
        const command = answer === 'y' || answer === 'yes' ? 'approvals.approve' : 'approvals.deny';
        try {
          await client.command({
            command,
            args: [r.id],
            opts: {},
            color: ctx.color,
            ...(passphrase !== undefined ? { passphrase } : {}),
          });
          write(command === 'approvals.approve' ? ctx.p.green('approved') : ctx.p.yellow('denied'));
        } catch (err) {
          if (!isAivaultError(err) || err.code !== 'not_found') throw err;
          write(ctx.p.dim(`${r.id} is no longer pending (timed out or decided elsewhere)`));
        }
      }
    }
  } finally {
    rl?.close();
    client.close();
  }
}

#!/usr/bin/env node
/**
 * `aivault` entry point: the only catch in the CLI. AivaultError → `error [code] message` (JSON with -v)
 * and exit 1 (2 for usage); anything unexpected → "internal error, please report" without a stack trace.
 */
import { CommanderError } from 'commander';
import { ERRORS, toWire } from '../core/errors.js';
import { loadConfig, noColorRequested, type Config } from '../core/config/env.js';
import { buildProgram } from './program.js';
import { detectColor, painter, renderError, toJson } from './output.js';
import type { CliContext, Runner } from './context.js';

function wantsVerbose(argv: readonly string[]): boolean {
  return argv.includes('-v') || argv.includes('--verbose');
}

async function main(argv: readonly string[]): Promise<number> {
  const verboseHint = wantsVerbose(argv);
  let config: Config | undefined;
  let exitCode = 0;
  const errColor = detectColor(process.stderr, noColorRequested());
  try {
    config = loadConfig();
    const cfg = config;
    const run: Runner = async (module, name, positionals, opts) => {
      const verbose = opts.verbose === true;
      const color = detectColor(process.stdout, cfg.noColor);
      const ctx: CliContext = {
        config: cfg,
        verbose,
        color,
        p: painter(color),
        stdout: process.stdout,
        stderr: process.stderr,
        stdin: process.stdin,
      };
      const { runCommand } = await import('./router.js');
      const result = await runCommand(ctx, module, name, positionals, opts);
      if (result === undefined) return;
      // A streamed invoke already wrote its body (json undefined): no trailing "undefined" line with -v.
      if (verbose) {
        if (result.json !== undefined) process.stdout.write(`${toJson(result.json)}\n`);
      } else if (result.raw) process.stdout.write(result.raw);
      else if (!result.silent) {
        const text = result.human(ctx.p);
        if (text !== '') process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
      }
      if (result.notice) process.stderr.write(`${ctx.p.yellow(result.notice)}\n`);
      if (result.exitCode) exitCode = result.exitCode;
    };
    const program = buildProgram(run, argv);
    program.configureOutput({
      writeOut: (s) => process.stdout.write(s),
      writeErr: (s) => process.stderr.write(s),
    });
    await program.parseAsync(argv as string[], { from: 'user' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version are not failures; every other parser error is a usage error.
      if (
        err.code === 'commander.helpDisplayed' ||
        err.code === 'commander.help' ||
        err.code === 'commander.version'
      ) {
        return 0;
      }
      return 2;
    }
    const wire = toWire(err);
    if (verboseHint) {
      process.stderr.write(`${toJson(wire)}\n`);
    } else {
      process.stderr.write(`${renderError(wire, painter(errColor))}\n`);
      if (wire.error === 'internal') process.stderr.write('This is a bug in aivault; please report it.\n');
    }
    return ERRORS[wire.error].exit;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  () => {
    process.exitCode = 1;
  },
);

#!/usr/bin/env node
/**
 * The `aivault` bin (CLI, main thread): `invoke|json|markdown` with a running daemon take the fast path
 * (src/cli/fast-invoke.ts); everything else, and anything that path declines, runs the full program
 * (src/cli/main.ts, loaded only then). Bundled by scripts/bundle-cli.mjs as ONE CommonJS file: the ESM
 * loader alone cost ~0.15× `node -e 0` of every call (issue 12).
 */
import { tryFastInvoke } from './fast-invoke.js';

tryFastInvoke(process.argv.slice(2)).then(
  async (code) => {
    if (code === undefined) await import('./main.js');
    else process.exitCode = code;
  },
  () => {
    process.exitCode = 1;
  },
);

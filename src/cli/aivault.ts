#!/usr/bin/env node
/**
 * The `aivault` bin (CLI, main thread): `invoke|json|markdown` with a running daemon take the fast path
 * (src/cli/fast-invoke.ts, bundled beside this file as fast.js and run with a V8 code cache:
 * ./code-cache.ts); everything else, and anything that path declines, runs the full program
 * (src/cli/main.ts, loaded only then). Bundled by scripts/bundle-cli.mjs as CommonJS: the ESM loader
 * alone cost ~0.15× `node -e 0` of every call (issue 12).
 */
import { join } from 'node:path';
import { loadWithCodeCache } from './code-cache.js';
import type * as FastInvoke from './fast-invoke.js';

const fast = loadWithCodeCache<typeof FastInvoke>(join(__dirname, 'fast.js'));

fast.exports.tryFastInvoke(process.argv.slice(2)).then(
  async (code) => {
    fast.saveCache();
    if (code === undefined) await import('./main.js');
    else process.exitCode = code;
  },
  () => {
    process.exitCode = 1;
  },
);

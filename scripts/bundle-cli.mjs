// Bundles the `aivault` CLI into dist/src/cli-bundle/, in two parts:
//  - main.js (the bin, src/cli/aivault.ts) and fast.js (the invoke fast path, src/cli/fast-invoke.ts), each
//    ONE CommonJS file (a package.json with "type": "commonjs" sits next to them); main.js runs fast.js
//    through a V8 code cache (src/cli/code-cache.ts). Why: the ESM loader alone cost ~0.15× `node -e 0`
//    per call, and `aivault invoke` is what agents run per request (issue 12).
//  - main.mjs + chunks: the full program (src/cli/main.ts; ESM, code-split so each command still loads
//    lazily), imported by main.js only when the fast path declines.
// Why bundle at all: CLI start-up is dominated by module resolution and CJS-interop parsing of ~100 small
// files; one bundle cut `aivault invoke` wall time by ~25-30% in bench runs. Native addons stay external.
// The daemon and the worker threads are NOT bundled (piscina loads worker files by path).
import { build } from 'esbuild';
import { rmSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

const outdir = 'dist/src/cli-bundle';

// Node built-ins that a package requires when it loads but the CLI never uses: ws needs node:https and
// node:tls only for wss:/https: URLs and node:zlib only for permessage-deflate (the CLI's unix-socket client
// uses neither); commander needs node:child_process only for executable subcommands (we have none).
// Loading them was ~25 ms of CPU per `aivault invoke` (issue 12). In this bundle only, those packages get
// a stand-in that loads the real module on first use (every use is inside a function, never at load).
const LAZY_BUILTINS = { ws: ['https', 'tls', 'zlib'], commander: ['child_process'] };
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    b.onResolve({ filter: /^(?:node:)?[a-z_]+$/ }, (args) => {
      const name = args.path.replace(/^node:/, '');
      const pkg = /[\\/]node_modules[\\/]([^\\/]+)[\\/]/.exec(args.importer)?.[1];
      return pkg && LAZY_BUILTINS[pkg]?.includes(name)
        ? { path: name, namespace: 'lazy-builtin' }
        : undefined;
    });
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, (args) => ({
      loader: 'js',
      contents: `let real;
const load = () => (real ??= require('node:${args.path}'));
module.exports = new Proxy({}, { get: (_, key) => load()[key], has: (_, key) => key in load() });`,
    }));
  },
};

rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: ['src/cli/main.ts'],
  outdir,
  outExtension: { '.js': '.mjs' },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  plugins: [lazyBuiltins],
  // Lives next to dist/src/front/, so daemon-link's relative path to aivaultd stays valid.
  external: [
    'sodium-native',
    'argon2',
    'keytar',
    'uWebSockets.js',
    'msgpackr-extract',
    'bufferutil',
    'utf-8-validate',
  ],
  // The CLI sends and receives a handful of small frames: the native helpers of msgpackr (string
  // decoding) and ws (frame masking) do not pay for their loading there (detect-libc, node-gyp-build and
  // two dlopens: ~30 ms of CPU per `aivault invoke`, issue 12). Replaced in this bundle only; the daemon
  // keeps them, and no environment variable leaks into processes the CLI starts.
  define: {
    'process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED': '"true"',
    'process.env.WS_NO_BUFFER_UTIL': '"1"',
  },
  banner: {
    js: "import { createRequire as __aivaultCreateRequire } from 'node:module'; const require = __aivaultCreateRequire(import.meta.url);",
  },
});

// The bin: the fast path in one CommonJS file; `import('./main.js')` (the full program) stays a real
// dynamic import of the ESM bundle above.
const fullProgram = {
  name: 'full-program',
  setup(b) {
    b.onResolve({ filter: /^\.\/main\.js$/ }, () => ({ path: './main.mjs', external: true }));
    // msgpackr's plain entry (pack + unpack): its node entry adds record structures (struct.js; we encode
    // with useRecords: false), streams and the native extractor, ~30 KB more to compile per call.
    b.onResolve({ filter: /^msgpackr$/ }, () => ({ path: resolve('node_modules/msgpackr/index.js') }));
  },
};
/** One CommonJS file for Node 20, the full program left to a dynamic import. */
const cjs = (entry, outfile, extra = {}) =>
  build({
    entryPoints: [entry],
    outfile: `${outdir}/${outfile}`,
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    logLevel: 'warning',
    plugins: [fullProgram],
    ...extra,
  });
// The fast path: fast.js, run by the bin through a V8 code cache (src/cli/code-cache.ts).
await cjs('src/cli/fast-invoke.ts', 'fast.js', {
  external: ['msgpackr-extract'],
  define: { 'process.env.MSGPACKR_NATIVE_ACCELERATION_DISABLED': '"true"' },
});
// The bin: a few lines that load fast.js with its cache, else the full program.
await cjs('src/cli/aivault.ts', 'main.js');
writeFileSync(`${outdir}/package.json`, '{ "type": "commonjs" }\n');

// Bundles the `aivault` CLI into dist/src/cli-bundle/ (ESM, code-split so each command still loads lazily).
// Why: CLI start-up is dominated by module resolution and CJS-interop parsing of ~100 small files; one
// bundle cut `aivault invoke` wall time by ~25-30% in bench runs. Native addons stay external.
// The daemon and the worker threads are NOT bundled (piscina loads worker files by path).
import { build } from 'esbuild';
import { rmSync } from 'node:fs';

const outdir = 'dist/src/cli-bundle';
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: ['src/cli/main.ts'],
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  // Lives next to dist/src/daemon/, so daemon-link's relative path to aivaultd stays valid.
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

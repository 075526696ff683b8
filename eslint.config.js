// Lint rules: typescript-eslint strict-ish + node protocol imports; process.exit only at the CLI/daemon edges;
// and the thread boundaries of src/ (folders by thread, see README "Architecture").
import tseslint from 'typescript-eslint';
import n from 'eslint-plugin-n';

/**
 * Thread boundaries. src/ is split by the thread a file runs on: front/ and pool/ (aivaultd's main thread),
 * request-worker/, crypto-worker/, and core/ (pure code every thread shares; stores/ are the on-disk stores
 * any thread or the CLI opens). A runtime import across a boundary would load code on the wrong thread —
 * worst case, KEK-holding crypto-worker code in the main thread or a request worker — so it is an error.
 * Type-only imports are allowed: they are erased at compile time (message types cross threads by design).
 * Matching is on the import specifier, so the patterns name the folder anywhere in a relative path; until
 * the folders exist they match nothing.
 */
const THREAD_FOLDERS = {
  front: 'daemon main thread (front/)',
  pool: 'daemon main thread (pool/)',
  'request-worker': 'request worker thread',
  'crypto-worker': 'crypto worker thread (holds the KEK)',
};
const noImportOf = (folders, why) => ({
  group: folders.flatMap((f) => [`./${f}/**`, `**/../${f}/**`, `**/src/${f}/**`]),
  allowTypeImports: true,
  message: why,
});
// import() is not covered by no-restricted-imports. (esquery regexes cannot hold a literal slash: \x2F.)
const noDynamicImportOf = (folders, why) => ({
  selector: `ImportExpression[source.value=/(^|\\x2F)(${folders.join('|')})\\x2F/]`,
  message: why,
});
const boundary = (files, folders, why) => ({
  files,
  rules: {
    'no-restricted-imports': ['error', { patterns: [noImportOf(folders, why)] }],
    'no-restricted-syntax': ['error', noDynamicImportOf(folders, why)],
  },
});
export const threadBoundaries = [
  boundary(
    ['src/front/**', 'src/pool/**'],
    ['request-worker', 'crypto-worker'],
    `main-thread code (front/, pool/) must not load ${THREAD_FOLDERS['request-worker']} or ${THREAD_FOLDERS['crypto-worker']} code; talk to them through the messages in core/threads/`,
  ),
  boundary(
    ['src/request-worker/**'],
    ['front', 'pool', 'crypto-worker'],
    'request-worker code must not load main-thread (front/, pool/) or crypto-worker code; use core/threads/ messages (crypto-client.ts for the crypto worker)',
  ),
  boundary(
    ['src/crypto-worker/**'],
    ['front', 'pool', 'request-worker'],
    'crypto-worker code must not load main-thread (front/, pool/) or request-worker code; use core/threads/ messages',
  ),
  boundary(
    ['src/core/**', 'src/stores/**'],
    ['front', 'pool', 'request-worker', 'crypto-worker', 'cli'],
    'core/ and stores/ are shared by every thread and the CLI: they must not load thread-specific or CLI code',
  ),
];

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'coverage/**',
      'bench/results/**',
      'src/core/registry/data.generated.ts',
      '.fuzz-build/**',
      '.fuzz-build-*/**',
      '.fuzz-corpus/**',
    ],
  },
  ...tseslint.configs.recommended,
  {
    plugins: { n },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      'n/prefer-node-protocol': 'error',
      'n/no-process-exit': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
  ...threadBoundaries,
  {
    files: ['src/cli/main.ts', 'src/front/main.ts', 'bench/**', 'scripts/**', 'test/**'],
    rules: { 'n/no-process-exit': 'off' },
  },
);

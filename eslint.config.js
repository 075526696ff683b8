// Lint rules: typescript-eslint strict-ish + node protocol imports; process.exit only at the CLI/daemon edges.
import tseslint from 'typescript-eslint';
import n from 'eslint-plugin-n';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'coverage/**',
      'bench/results/**',
      'src/registry/data.generated.ts',
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
  {
    files: ['src/cli/main.ts', 'src/daemon/main.ts', 'bench/**', 'scripts/**', 'test/**'],
    rules: { 'n/no-process-exit': 'off' },
  },
);

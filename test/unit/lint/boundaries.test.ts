/**
 * The thread-boundary lint rule (eslint.config.js `threadBoundaries`): linted through ESLint's Node API with
 * virtual file paths in each thread folder, so it is proven both before and after the folders exist.
 * Each violating import must be reported; each legal one must pass with no message at all.
 */
import { describe, expect, it } from 'vitest';
import { ESLint } from 'eslint';

const eslint = new ESLint({ cwd: process.cwd() });

async function lint(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).map((m) => `${m.ruleId ?? 'parse'}: ${m.message}`);
}

const VIOLATIONS: [file: string, code: string][] = [
  // main thread → worker code
  ['src/front/http-x.ts', "import { run } from '../request-worker/pipeline/invoke.js';\nrun();\n"],
  [
    'src/front/https-proxy/x.ts',
    "import { CryptoService } from '../../crypto-worker/crypto-service.js';\nnew CryptoService();\n",
  ],
  ['src/pool/pool-x.ts', "export { createAuth } from '../request-worker/auth/index.js';\n"],
  ['src/front/x.ts', "export const m = import('../crypto-worker/crypto-service.js');\n"],
  // worker code → main thread, and worker → the other worker
  [
    'src/request-worker/pipeline/x.ts',
    "import { DaemonPool } from '../../pool/daemon-pool.js';\nnew DaemonPool();\n",
  ],
  ['src/request-worker/x.ts', "import { relay } from '../front/relay.js';\nrelay();\n"],
  [
    'src/request-worker/x.ts',
    "import { CryptoService } from '../crypto-worker/crypto-service.js';\nnew CryptoService();\n",
  ],
  ['src/crypto-worker/x.ts', "import { invoke } from '../request-worker/pipeline/invoke.js';\ninvoke();\n"],
  ['src/crypto-worker/x.ts', "import { startHttp } from '../front/http-server.js';\nstartHttp();\n"],
  // shared code → any thread or the CLI
  ['src/core/threads/x.ts', "import { DaemonPool } from '../../pool/daemon-pool.js';\nnew DaemonPool();\n"],
  ['src/core/broker/x.ts', "import { out } from '../../cli/output.js';\nout();\n"],
  ['src/stores/vault/x.ts', "export const m = import('../../front/main.js');\n"],
];

const LEGAL: [file: string, code: string][] = [
  [
    'src/front/x.ts',
    "import { callTransferList } from '../core/threads/call-port.js';\ncallTransferList();\n",
  ],
  ['src/front/x.ts', "import { DaemonPool } from '../pool/daemon-pool.js';\nnew DaemonPool();\n"],
  [
    'src/front/x.ts',
    "import type { ScrubMatcher } from '../request-worker/pipeline/scrub.js';\nexport type M = ScrubMatcher;\n",
  ],
  ['src/request-worker/pipeline/x.ts', "import { createAuth } from '../auth/index.js';\ncreateAuth();\n"],
  ['src/request-worker/x.ts', "import { loadVault } from '../stores/vault/index.js';\nloadVault();\n"],
  ['src/crypto-worker/x.ts', "import { commandTable } from '../cli/command-table.js';\ncommandTable();\n"],
  [
    'src/core/threads/x.ts',
    "import type { CommandJob } from '../../crypto-worker/operator-executor.js';\nexport type J = CommandJob;\n",
  ],
  ['src/cli/x.ts', "export const m = import('../request-worker/pipeline/in-process.js');\n"],
];

describe('thread boundaries (eslint no-restricted-imports / no-restricted-syntax)', () => {
  it.each(VIOLATIONS)('reports %s: %s', async (file, code) => {
    const messages = await lint(file, code);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(/^no-restricted-(imports|syntax): /);
  });

  it.each(LEGAL)('allows %s: %s', async (file, code) => {
    expect(await lint(file, code)).toEqual([]);
  });
});

/**
 * What every section measures against (bench process): `npm run build` (unless --no-build), the bench's
 * HTTPS upstream (support/upstream.ts), a dev vault holding one OpenAI key, aivaultd started on demand
 * (warmed up before anything is measured), and the baseline proxies — node-floor and nginx (skipped with
 * the reason when it cannot run) — as the first load targets beside `direct`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from '../../src/core/protocol/client.js';
import { startChild, stopChild } from '../support/children.js';
import { ensureDebian, startNginx, type Nginx } from '../support/nginx.js';
import { processTree } from '../support/proc.js';
import type { Results } from '../support/report.js';
import {
  API,
  CLI,
  DAEMON,
  log,
  ROOT,
  TSX,
  type BenchContext,
  type BenchTarget,
  type Daemon,
  type Params,
} from '../support/context.js';

/** `npm run build`; when it fails the existing dist/ is measured (and the report says so). */
export function build(results: Results): void {
  log('bench: npm run build …');
  const b = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, encoding: 'utf8' });
  if (b.status !== 0) {
    if (!existsSync(DAEMON)) throw new Error(`build failed and there is no dist/: ${b.stderr}`);
    results.notes.push(
      '`npm run build` failed at bench time (others were editing src/); the existing dist/ was measured.',
    );
    log('bench: build failed, measuring the existing dist/');
  }
}

export interface Fixture extends BenchContext {
  /** direct, node-floor and nginx (when it runs); the http section adds the aivaultd HTTP targets. */
  readonly httpTargets: BenchTarget[];
  /** Why the wrk cross-check cannot run (quick mode, wrk missing), or undefined. */
  readonly wrkWhy: string | undefined;
  /** Stop nginx, node-floor and the upstream. */
  stop(): Promise<void>;
  /** Remove the run's temporary folder (the vault, sockets, nginx config). */
  removeWorkDir(): void;
}

export async function startFixture(run: {
  readonly P: Params;
  readonly quick: boolean;
  readonly results: Results;
}): Promise<Fixture> {
  const { P, results } = run;
  const work = mkdtempSync(join(tmpdir(), 'aivault-bench-'));
  const vaultDir = join(work, 'vault');
  const baseEnv = { ...process.env };
  delete baseEnv.AIVAULT_KEY;

  // 1. upstream
  const up = await startChild(
    process.execPath,
    [...TSX, join(ROOT, 'bench', 'support', 'upstream.ts')],
    baseEnv,
    /^\{"port"/,
  );
  const upInfo = JSON.parse(up.line) as { port: number; caCertPath: string };
  const upPids = [up.child.pid as number];
  log(`bench: upstream https://127.0.0.1:${upInfo.port}`);

  // 2. dev vault + key
  const env: NodeJS.ProcessEnv = {
    ...baseEnv,
    AIVAULT_DIR: vaultDir,
    AIVAULT_DEV_RESOLVE: `api.openai.com=127.0.0.1:${upInfo.port}`,
    AIVAULT_DEV_CA_CERT_PATH: upInfo.caCertPath,
    AIVAULTD_AUTOSTART: '0',
    NO_COLOR: '1',
  };
  const cli = (argv: string[], input?: string): string => {
    const r = spawnSync(process.execPath, [CLI, ...argv], { env, input: input ?? '', encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`aivault ${argv.join(' ')} failed: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  cli(['init', '--dev']);
  cli(
    ['secrets', 'create', '--name', 'OPENAI_API_KEY', '--value-stdin'],
    'sk-bench-aivault-0123456789abcdef',
  );
  results.notes.push(
    'aivaultd runs with its default configuration: audit log on disk (one HMAC-chained line per call, group commit), decrypted auth held per request worker in sodium secure memory after the first call (docs/security.md, Decrypted-secret cache).',
  );

  const startDaemon = async (
    workers: number,
    extra: string[] = [],
    envOverride: NodeJS.ProcessEnv = {},
  ): Promise<Daemon> => {
    const socketPath = join(work, `d${workers}-${Date.now()}.sock`);
    const { child } = await startChild(
      process.execPath,
      [
        ...(process.env.BENCH_DAEMON_NODE_FLAGS ?? '').split(' ').filter(Boolean),
        DAEMON,
        '--socket',
        socketPath,
        '--workers',
        String(workers),
        ...extra,
      ],
      { ...env, ...envOverride },
      /listening on/,
    );
    // one call to warm the pool (crypto port, catalog, TLS) before anything is measured
    const c = await connect({ socketPath });
    for (let i = 0; i < workers * 4; i++) {
      await Promise.all(
        Array.from({ length: workers * 2 }, () =>
          c.invoke({
            capability: 'openai/chat-completions',
            request: { method: 'POST', path: '/v1/chat/completions', body: '{}' },
          }),
        ),
      );
    }
    c.close();
    return { pid: child.pid as number, socketPath, workers, stop: () => stopChild(child) };
  };

  // 3. node-floor, nginx
  const nf = await startChild(
    process.execPath,
    [...TSX, join(ROOT, 'bench', 'support', 'node-floor.ts')],
    { ...baseEnv, BENCH_UPSTREAM_PORT: String(upInfo.port), BENCH_CA_CERT_PATH: upInfo.caCertPath },
    /^\{"port"/,
  );
  const nfPort = (JSON.parse(nf.line) as { port: number }).port;
  const nginx: Nginx | string = await startNginx(join(work, 'nginx'), upInfo.port, upInfo.caCertPath);
  if (typeof nginx === 'string') {
    results.skipped.push({ target: 'nginx', reason: nginx });
    log(`bench: skipped nginx: ${nginx}`);
  } else results.versions.nginx = nginx.version;
  const nginxPids = typeof nginx === 'string' ? [] : processTree(nginx.pid);
  const wrkWhy = P.wrk ? ensureDebian('wrk', ['wrk']) : 'quick mode (wrk cross-check only in the full run)';
  if (wrkWhy) results.skipped.push({ target: 'wrk cross-check', reason: wrkWhy });

  const httpTargets: BenchTarget[] = [
    {
      name: 'direct',
      target: { kind: 'http', url: `https://127.0.0.1:${upInfo.port}`, caCertPath: upInfo.caCertPath },
      pids: upPids,
      wrkUrl: `https://127.0.0.1:${upInfo.port}${API}`,
    },
    {
      name: 'node-floor',
      target: { kind: 'http', url: `http://127.0.0.1:${nfPort}` },
      pids: [nf.child.pid as number],
      wrkUrl: `http://127.0.0.1:${nfPort}${API}`,
    },
  ];
  if (typeof nginx !== 'string') {
    httpTargets.push({
      name: 'nginx',
      target: { kind: 'http', url: `http://127.0.0.1:${nginx.port}` },
      pids: nginxPids,
      wrkUrl: `http://127.0.0.1:${nginx.port}${API}`,
    });
  }

  return {
    P,
    quick: run.quick,
    results,
    baseEnv,
    env,
    vaultDir,
    upstream: upInfo,
    startDaemon,
    httpTargets,
    wrkWhy,
    async stop() {
      if (typeof nginx !== 'string') await nginx.stop();
      await stopChild(nf.child);
      await stopChild(up.child);
    },
    removeWorkDir() {
      rmSync(work, { recursive: true, force: true });
    },
  };
}

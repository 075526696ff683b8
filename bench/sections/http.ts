/**
 * Section `http` (bench process): aivaultd's loopback HTTP listener as load targets — `POST
 * /aivault/proxy`, `/v/{credential}/…` passthrough, and the HTTPS proxy (CONNECT + TLS to the vault CA's
 * leaf) when the build has `--https-proxy` — on one 2-worker daemon with a proxy token minted for the run.
 * Targets that measured are added to the HTTP targets (the streaming sections use them too).
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { spawnSync } from 'node:child_process';
import { freePort } from '../support/nginx.js';
import {
  API,
  DAEMON,
  log,
  ROOT,
  type BenchContext,
  type BenchTarget,
  type Daemon,
} from '../support/context.js';
import { measurePoint } from './load.js';

interface HttpListener {
  mintToken(env: NodeJS.ProcessEnv, d: Daemon): Promise<string | undefined>;
  /** The daemon build serves `--https-proxy` too. */
  httpsProxy: boolean;
}

/**
 * Returns the daemon it started (the streaming sections measure `aivaultd-http-proxy` on it; the
 * orchestrator stops it), or undefined when the section did not run.
 */
export async function httpSection(
  ctx: BenchContext,
  httpTargets: BenchTarget[],
  requested: boolean,
): Promise<Daemon | undefined> {
  const { P, results, env, vaultDir } = ctx;
  const http = requested ? await probeHttpListener() : 'not requested (--only)';
  let httpDaemon: Daemon | undefined;
  if (typeof http === 'string') {
    results.skipped.push({
      target: 'aivaultd-http-proxy, aivaultd-http-passthrough, aivaultd-https-proxy',
      reason: http,
    });
    log(`bench: ${http}`);
  } else {
    const port = await freePort();
    // The HTTPS proxy (CONNECT + TLS termination with the vault CA) on the same daemon, when the build has it.
    const proxyPort = http.httpsProxy ? await freePort() : undefined;
    httpDaemon = await ctx.startDaemon(2, [
      '--http',
      `127.0.0.1:${port}`,
      ...(proxyPort !== undefined ? ['--https-proxy', `127.0.0.1:${proxyPort}`] : []),
    ]);
    httpDaemon.httpPort = port;
    const token = await http.mintToken(env, httpDaemon);
    const hdrs: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const tps: BenchTarget[] = [
      {
        name: 'aivaultd-http-proxy',
        target: {
          kind: 'http',
          url: `http://127.0.0.1:${port}`,
          headers: hdrs,
          envelopeRoute: '/aivault/proxy',
          capability: 'openai/chat-completions',
        },
        pids: [httpDaemon.pid],
      },
      {
        name: 'aivaultd-http-passthrough',
        target: { kind: 'http', url: `http://127.0.0.1:${port}`, headers: hdrs, pathPrefix: '/v/openai' },
        pids: [httpDaemon.pid],
        wrkUrl: `http://127.0.0.1:${port}/v/openai${API}`,
        ...(token ? { wrkHeader: `Authorization: Bearer ${token}` } : {}),
      },
      ...(proxyPort !== undefined && token
        ? [
            {
              name: 'aivaultd-https-proxy',
              target: {
                kind: 'http' as const,
                url: 'https://api.openai.com',
                proxy: {
                  uri: `http://aivault:${token}@127.0.0.1:${proxyPort}`,
                  caCertPath: join(vaultDir, 'ca', 'aivault-ca.pem'),
                },
              },
              pids: [httpDaemon.pid],
            },
          ]
        : []),
    ];
    for (const t of tps) {
      try {
        for (const c of P.conc) await measurePoint(ctx, t.name, t.target, t.pids, c);
        httpTargets.push(t);
      } catch (err) {
        results.skipped.push({ target: t.name, reason: `failed: ${(err as Error).message.slice(0, 200)}` });
      }
    }
  }
  return httpDaemon;
}

/** The HTTP listener is being built in parallel: use it only when the build has it. */
async function probeHttpListener(): Promise<HttpListener | string> {
  const srcDir = join(ROOT, 'src', 'front');
  const files = readdirSync(srcDir).filter((f) => /^http-.*\.ts$/.test(f));
  const help = spawnSync(process.execPath, [DAEMON, '--help'], { encoding: 'utf8' }).stdout ?? '';
  if (files.length === 0 || !help.includes('--http')) return 'skipped: HTTP listener not available';
  const tokensModule = join(ROOT, 'src', 'stores', 'tokens', 'tokens.ts');
  if (!existsSync(tokensModule))
    return 'skipped: HTTP listener present but src/stores/tokens/tokens.ts (proxy tokens) is not';
  return {
    httpsProxy: help.includes('--https-proxy'),
    async mintToken(env) {
      // Loaded by path: the module is being written in parallel and may not exist in every checkout.
      const mod = (await import(pathToFileURL(tokensModule).href)) as {
        mintProxyToken(
          dir: string,
          input: { capabilities: string[]; ttlMs?: number; label?: string },
        ): Promise<{ token: string }>;
      };
      const { token } = await mod.mintProxyToken(env.AIVAULT_DIR as string, {
        capabilities: ['openai/*'],
        ttlMs: 3_600_000,
        label: 'bench',
      });
      return token;
    },
  };
}

/**
 * Set-up shared by the stand-alone daemon benches (bench/daemon-cpu.ts, bench/memory.ts): the bench's HTTPS
 * upstream in its own process plus a throwaway dev vault (made with the compiled CLI) whose
 * `api.openai.com` resolves to it and which holds OPENAI_API_KEY. Needs `npm run build` first.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..', '..');

/** Resolves with the first stdout/stderr line of `child` that matches `re`; rejects if it exits first. */
export function waitLine(child: ChildProcess, re: RegExp): Promise<string> {
  return new Promise((res, rej) => {
    let buf = '';
    const on = (d: Buffer): void => {
      buf += d.toString();
      const line = buf.split('\n').find((l) => re.test(l));
      if (line) res(line);
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
    child.once('exit', (code) => rej(new Error(`exited ${code}: ${buf.slice(-600)}`)));
  });
}

export interface DevUpstream {
  /** Temp dir holding the vault (and whatever the bench puts next to it). */
  work: string;
  upstream: ChildProcess;
  /** Environment for the CLI and aivaultd: the dev vault, the upstream mapping, no autostart. */
  env: NodeJS.ProcessEnv;
}

/** `upstreamArgs`: flags for bench/support/upstream.ts (`--h2`). */
export async function startDevUpstream(tag: string, upstreamArgs: string[] = []): Promise<DevUpstream> {
  const work = mkdtempSync(join(tmpdir(), `aivault-${tag}-`));
  const baseEnv = { ...process.env };
  delete baseEnv.AIVAULT_KEY;
  const upstream = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'bench', 'support', 'upstream.ts'), ...upstreamArgs],
    {
      env: baseEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const upInfo = JSON.parse(await waitLine(upstream, /^\{"port"/)) as { port: number; caCertPath: string };
  const env: NodeJS.ProcessEnv = {
    ...baseEnv,
    AIVAULT_DIR: join(work, 'vault'),
    AIVAULT_DEV_RESOLVE: `api.openai.com=127.0.0.1:${upInfo.port}`,
    AIVAULT_DEV_CA_CERT_PATH: upInfo.caCertPath,
    AIVAULTD_AUTOSTART: '0',
    AIVAULTD_DISABLE: '1',
  };
  const cli = (argv: string[], input = ''): void => {
    const r = spawnSync(process.execPath, [join(ROOT, 'dist', 'src', 'cli', 'main.js'), ...argv], {
      env,
      input,
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`aivault ${argv.join(' ')}: ${r.stderr}`);
  };
  cli(['init', '--dev']);
  cli(
    ['secrets', 'create', '--name', 'OPENAI_API_KEY', '--value-stdin'],
    'sk-bench-aivault-0123456789abcdef',
  );
  delete env.AIVAULTD_DISABLE;
  return { work, upstream, env };
}

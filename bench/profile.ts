/**
 * `npm run profile`: profiles aivaultd under load (2 request workers, c=64, socket protocol, the bench's
 * own HTTPS upstream) three ways; output in bench/profiles/ (git-ignored):
 *   1. clinic doctor  → doctor/*.html   event-loop delay, CPU, memory, handles of the MAIN thread
 *   2. clinic flame   → flame/*.html    flame graph of the MAIN thread (uWS front + relays)
 *   3. node --cpu-prof                  one .cpuprofile per thread, INCLUDING the request workers and the
 *                                       crypto worker (clinic only sees the main thread, and the pipeline
 *                                       runs in workers). Summarised into cpu-summary.md (top self time
 *                                       per thread, grouped by file); open a .cpuprofile in Chrome DevTools
 *                                       or speedscope for the full flame graph.
 * Flags: --seconds N (load per profile, default 20), --skip-clinic.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { connect } from '../src/core/protocol/client.js';
import { processTree } from './support/proc.js';

const ROOT = resolve(import.meta.dirname, '..');
const OUT = join(ROOT, 'bench', 'profiles');
const args = process.argv.slice(2);
const SECONDS = args.includes('--seconds') ? Number(args[args.indexOf('--seconds') + 1]) : 20;
const SKIP_CLINIC = args.includes('--skip-clinic');
const DAEMON = join(ROOT, 'dist', 'src', 'front', 'main.js');
const CLI = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const log = (s: string): void => void process.stderr.write(`${s}\n`);

function waitLine(child: ChildProcess, re: RegExp, what: string): Promise<string> {
  return new Promise<string>((res, rej) => {
    let buf = '';
    const on = (d: Buffer): void => {
      buf += d.toString();
      const l = buf.split('\n').find((x) => re.test(x));
      if (l) res(l);
    };
    child.stdout?.on('data', on);
    child.stderr?.on('data', on);
    child.once('exit', (c) => rej(new Error(`${what} exited ${c}: ${buf.slice(-500)}`)));
    setTimeout(() => rej(new Error(`${what} not ready: ${buf.slice(-500)}`)), 60_000).unref();
  });
}

function drive(socketPath: string, pids: number[], seconds: number): string {
  const cfg = {
    mode: 'http',
    target: { kind: 'socket', socketPath, capability: 'openai/chat-completions' },
    pids,
    concurrency: 64,
    durationMs: seconds * 1000,
    warmupMs: 1000,
    path: '/v1/chat/completions',
  };
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'bench', 'support', 'driver.ts'), JSON.stringify(cfg)],
    {
      cwd: ROOT,
      encoding: 'utf8',
    },
  );
  return (r.stdout ?? '').trim();
}

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}

/** Top self time of a .cpuprofile, by function and by file. */
function summarise(file: string): { total: number; byFn: [string, number][]; byFile: [string, number][] } {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as {
    nodes: Node[];
    samples: number[];
    timeDeltas: number[];
  };
  const self = new Map<number, number>();
  prof.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (prof.timeDeltas[i] ?? 0)));
  const byFn = new Map<string, number>();
  const byFile = new Map<string, number>();
  let total = 0;
  for (const n of prof.nodes) {
    const t = self.get(n.id) ?? 0;
    if (!t || n.callFrame.functionName === '(idle)') continue; // busy time only
    total += t;
    let url = n.callFrame.url.replace(/^file:\/\//, '');
    if (url.startsWith(ROOT)) url = relative(ROOT, url);
    url = url.replace(/^node_modules\/([^/]+(\/[^/]+)?)\/.*$/, (_m, pkg: string) =>
      pkg.startsWith('@') ? `npm:${pkg}` : `npm:${pkg.split('/')[0]}`,
    );
    const fn = `${n.callFrame.functionName || '(anonymous)'} ${url}:${n.callFrame.lineNumber + 1}`;
    const fileKey = url || `(${n.callFrame.functionName})`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + t);
    byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + t);
  }
  const top = (m: Map<string, number>): [string, number][] => [...m].sort((a, b) => b[1] - a[1]).slice(0, 25);
  return { total, byFn: top(byFn), byFile: top(byFile) };
}

async function main(): Promise<void> {
  if (!existsSync(DAEMON)) throw new Error('build first: npm run build');
  mkdirSync(OUT, { recursive: true });
  const work = mkdtempSync(join(tmpdir(), 'aivault-profile-'));
  const up = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'support', 'upstream.ts')], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const upInfo = JSON.parse(await waitLine(up, /^\{"port"/, 'upstream')) as {
    port: number;
    caCertPath: string;
  };
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    AIVAULT_DIR: join(work, 'vault'),
    AIVAULT_DEV_RESOLVE: `api.openai.com=127.0.0.1:${upInfo.port}`,
    AIVAULT_DEV_CA_CERT_PATH: upInfo.caCertPath,
    AIVAULTD_AUTOSTART: '0',
  };
  delete env.AIVAULT_KEY;
  spawnSync(process.execPath, [CLI, 'init', '--dev'], { env });
  spawnSync(process.execPath, [CLI, 'secrets', 'create', '--name', 'OPENAI_API_KEY', '--value-stdin'], {
    env,
    input: 'sk-profile-0123456789',
  });

  /** Start `argv` (which ends up running the daemon), load it, stop it with SIGINT, wait for the tool. */
  const profileRun = async (label: string, argv: string[], cwd: string): Promise<string> => {
    const socketPath = join(work, `${label}.sock`);
    // NO_INSIGHT: clinic otherwise asks (without a TTY: silently gives up) about usage statistics.
    const child = spawn(
      argv[0] as string,
      [...argv.slice(1), DAEMON, '--socket', socketPath, '--workers', '2'],
      {
        cwd,
        env: { ...env, NO_INSIGHT: '1' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    await waitLine(child, /listening on/, label);
    const c = await connect({ socketPath });
    for (let i = 0; i < 20; i++)
      await c.invoke({
        capability: 'openai/chat-completions',
        request: { method: 'POST', path: '/v1/chat/completions', body: '{}' },
      });
    c.close();
    const daemonPid = Number(/pid (\d+)/.exec(out)?.[1] ?? child.pid);
    log(`profile ${label}: load c=64 for ${SECONDS} s …`);
    const res = drive(socketPath, processTree(daemonPid), SECONDS);
    log(`  ${res}`);
    process.kill(daemonPid, 'SIGINT');
    await new Promise<void>((r) => child.once('exit', () => r()));
    return out + `\nload: ${res}\n`;
  };

  const report: string[] = [`# profile run ${new Date().toISOString()}`, ''];
  if (!SKIP_CLINIC) {
    for (const tool of ['doctor', 'flame'] as const) {
      const dir = join(OUT, tool);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      try {
        const out = await profileRun(
          `clinic-${tool}`,
          [
            join(ROOT, 'node_modules', '.bin', 'clinic'),
            tool,
            '--open=false',
            '--dest',
            dir,
            '--',
            process.execPath,
          ],
          ROOT,
        );
        const html = readdirSync(dir).filter((f) => f.endsWith('.html'));
        report.push(
          `clinic ${tool}: ${html.length ? html.map((h) => `bench/profiles/${tool}/${h}`).join(', ') : `no HTML produced: ${out.slice(-300)}`}`,
        );
        const rec = /Doctor has found[^\n]*|Analysing[^\n]*|detected[^\n]*/i.exec(out);
        if (rec) report.push(`  ${rec[0]}`);
      } catch (err) {
        report.push(`clinic ${tool} failed: ${(err as Error).message.slice(0, 300)}`);
      }
    }
  }

  const cpuDir = join(OUT, 'cpuprof');
  rmSync(cpuDir, { recursive: true, force: true });
  mkdirSync(cpuDir, { recursive: true });
  await profileRun('cpu-prof', [process.execPath, '--cpu-prof', '--cpu-prof-dir', cpuDir], ROOT);
  const files = writeCpuSummary(cpuDir);
  report.push(
    `node --cpu-prof: ${files.length} profiles in bench/profiles/cpuprof/, summary in bench/profiles/cpu-summary.md`,
  );
  writeFileSync(join(OUT, 'README.txt'), `${report.join('\n')}\n`);
  process.stdout.write(`${report.join('\n')}\n`);
  up.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}

function writeCpuSummary(cpuDir: string): string[] {
  const files = readdirSync(cpuDir).filter((f) => f.endsWith('.cpuprofile'));
  const md: string[] = [
    '# aivaultd CPU profile (all threads)',
    '',
    `Load: aivaultd --workers 2, socket protocol, c=64, ${SECONDS} s, 1 KiB JSON upstream reply. Self time per thread, as a share of the thread's busy (non-idle) samples.`,
    '',
  ];
  for (const f of files.sort()) {
    const s = summarise(join(cpuDir, f));
    if (s.total < 50_000) continue; // idle threads
    const tid = Number(f.split('.')[4]);
    const role = tid === 0 ? 'main thread (uWS front)' : tid === 1 ? 'crypto worker' : 'request worker';
    md.push(
      `## ${role} — ${f} — ${(s.total / 1e6).toFixed(1)} s busy (excluding idle)`,
      '',
      '| self % | by file / package |',
      '|---:|---|',
    );
    for (const [k, v] of s.byFile.slice(0, 15)) md.push(`| ${((100 * v) / s.total).toFixed(1)} | ${k} |`);
    md.push('', '| self % | by function |', '|---:|---|');
    for (const [k, v] of s.byFn.slice(0, 20))
      md.push(`| ${((100 * v) / s.total).toFixed(1)} | ${k.replace(/\|/g, '\\|')} |`);
    md.push('');
  }
  writeFileSync(join(OUT, 'cpu-summary.md'), md.join('\n'));
  return files;
}

if (args.includes('--summarise-only')) {
  writeCpuSummary(join(OUT, 'cpuprof'));
  process.exit(0);
}
main().catch((err: unknown) => {
  process.stderr.write(`profile failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});

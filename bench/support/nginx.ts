/**
 * nginx as a reference proxy: `proxy_set_header Authorization …`, keep-alive to the HTTPS upstream,
 * no buffering (SSE passes through). Installed from Debian when missing; the caller gets a reason string
 * instead of a server when that is impossible.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as netConnect, createServer } from 'node:net';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** Install a Debian package when its command is missing. Returns a reason when it cannot. */
export function ensureDebian(cmd: string, pkgs: string[]): string | undefined {
  if (has(cmd)) return undefined;
  if (process.getuid?.() !== 0)
    return `${cmd} is not installed and we are not root (apt-get install ${pkgs[0]})`;
  for (const pkg of pkgs) {
    process.stderr.write(`bench: installing ${pkg} from Debian …\n`);
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore', timeout: 180_000 });
    const r = spawnSync('apt-get', ['install', '-y', '-qq', pkg], {
      stdio: 'ignore',
      timeout: 300_000,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (r.status === 0 && has(cmd)) return undefined;
  }
  return `${cmd} could not be installed (apt-get install ${pkgs.join(' or ')} failed)`;
}

export interface Nginx {
  port: number;
  pid: number;
  version: string;
  stop(): Promise<void>;
}

export async function startNginx(
  dir: string,
  upstreamPort: number,
  caCertPath: string,
): Promise<Nginx | string> {
  const why = ensureDebian('nginx', ['nginx-light', 'nginx']);
  if (why) return why;
  const nginx = spawnSync('sh', ['-c', 'command -v nginx']).stdout.toString().trim();
  const vtext = spawnSync(nginx, ['-v'], { encoding: 'utf8' }).stderr.trim();
  const port = await freePort();
  mkdirSync(join(dir, 'logs'), { recursive: true });
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `worker_processes auto;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'logs', 'error.log')} error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fcgi; uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  upstream bench_upstream { server 127.0.0.1:${upstreamPort}; keepalive 256; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass https://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host api.openai.com;
      proxy_set_header Authorization "Bearer sk-bench-nginx";
      proxy_ssl_server_name on;
      proxy_ssl_name localhost;
      proxy_ssl_trusted_certificate ${caCertPath};
      proxy_ssl_verify on;
      proxy_ssl_session_reuse on;
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
`,
  );
  const child: ChildProcess = spawn(nginx, ['-p', dir, '-c', conf, '-g', 'daemon off;'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  // wait until it accepts connections
  const deadline = Date.now() + 5000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = netConnect(port, '127.0.0.1');
      s.once('connect', () => (s.destroy(), resolve(true)));
      s.once('error', () => resolve(false));
    });
    if (ok) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      return `nginx did not start: ${err.trim().slice(0, 300)}`;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port,
    pid: child.pid as number,
    version: vtext.replace(/^nginx version:\s*/, ''),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGQUIT');
        setTimeout(() => child.kill('SIGKILL'), 3000).unref();
      }),
  };
}

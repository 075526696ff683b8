/**
 * node-floor: the least a Node proxy can do, as the baseline aivaultd is measured against. node:http on
 * 127.0.0.1 + one undici keep-alive Pool to the HTTPS upstream; it injects `Authorization: Bearer …`,
 * drops the hop-by-hop headers and streams the response back (no policy, no vault, no audit).
 * Env: BENCH_UPSTREAM_PORT, BENCH_CA_CERT_PATH. Prints `{"port":…}` when listening.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Pool } from 'undici';

const upstreamPort = Number(process.env.BENCH_UPSTREAM_PORT);
const ca = readFileSync(String(process.env.BENCH_CA_CERT_PATH), 'utf8');
const pool = new Pool(`https://127.0.0.1:${upstreamPort}`, {
  connect: { ca, servername: 'localhost' },
  keepAliveTimeout: 60_000,
  pipelining: 1,
});
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'host', 'authorization', 'upgrade']);
const AUTH = 'Bearer sk-bench-node-floor';

const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  const headers: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (!HOP.has((raw[i] as string).toLowerCase())) headers.push(raw[i] as string, raw[i + 1] as string);
  }
  headers.push('authorization', AUTH);
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  pool
    .request({
      path: req.url ?? '/',
      method: req.method as 'GET',
      headers,
      body: hasBody ? req : null,
    })
    .then(
      (up) => {
        const out: Record<string, string | string[]> = {};
        for (const [k, v] of Object.entries(up.headers)) {
          if (v !== undefined && !HOP.has(k)) out[k] = v;
        }
        res.writeHead(up.statusCode, out);
        if (out['content-type'] === 'text/event-stream') res.flushHeaders();
        up.body.on('data', (c: Buffer) => {
          if (!res.write(c)) {
            up.body.pause();
            res.once('drain', () => up.body.resume());
          }
        });
        up.body.on('end', () => res.end());
        up.body.on('error', () => res.destroy());
        res.on('close', () => up.body.destroy());
      },
      () => {
        res.writeHead(502);
        res.end();
      },
    );
});
server.keepAliveTimeout = 120_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));

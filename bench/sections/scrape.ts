/**
 * Section `scrape` (bench process): does scraping GET /metrics change request latency? /v/ passthrough
 * at c=16 on a 2-worker daemon, without a scraper, with one scraping every 100 ms (an operator token, as
 * Prometheus would), and without again (the baseline is the mean of the two unscraped runs, so drift
 * shows). The ratios go into the report's notes.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { drive } from '../support/children.js';
import type { LoadResult, Target } from '../support/driver.js';
import { freePort } from '../support/nginx.js';
import { API, log, ROOT, type BenchContext } from '../support/context.js';

export async function scrapeSection(ctx: BenchContext): Promise<void> {
  const { P, results } = ctx;
  log('bench: metrics scrape (passthrough c=16, scraper every 100 ms) …');
  const port = await freePort();
  const d = await ctx.startDaemon(2, ['--http', `127.0.0.1:${port}`]);
  try {
    const tokens = (await import(pathToFileURL(join(ROOT, 'src', 'stores', 'tokens', 'tokens.ts')).href)) as {
      mintProxyToken(
        dir: string,
        input: { capabilities: string[]; ttlMs?: number },
      ): Promise<{ token: string }>;
      createOperatorToken(dir: string, input: { name: string }): Promise<{ token: string }>;
    };
    const dir = ctx.env.AIVAULT_DIR as string;
    const proxy = (await tokens.mintProxyToken(dir, { capabilities: ['openai/*'], ttlMs: 3_600_000 })).token;
    const operator = (await tokens.createOperatorToken(dir, { name: 'bench-scraper' })).token;
    const base = `http://127.0.0.1:${port}`;
    const first = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${operator}` } });
    if (first.status !== 200) {
      results.skipped.push({ target: 'metrics-scrape', reason: `GET /metrics answered ${first.status}` });
      return;
    }
    await first.text();
    const target: Target = {
      kind: 'http',
      url: base,
      headers: { authorization: `Bearer ${proxy}` },
      pathPrefix: '/v/openai',
    };
    const run = async (name: string): Promise<LoadResult> => {
      const r = await drive<LoadResult>({
        mode: 'http',
        target,
        pids: [d.pid],
        concurrency: 16,
        durationMs: P.durationMs,
        warmupMs: P.warmupMs,
        path: API,
      });
      results.load.push({ target: name, generator: 'driver', concurrency: 16, ...r });
      log(
        `  ${name.padEnd(28)} ${r.rps.toFixed(0).padStart(6)} req/s  p50 ${(r.p50us / 1000).toFixed(2)} ms  p99 ${(r.p99us / 1000).toFixed(2)} ms  cpu ${r.cpuUsPerReq.toFixed(0)} µs/req`,
      );
      return r;
    };
    const a1 = await run('passthrough-unscraped');
    let scrapes = 0;
    let failed = 0;
    let bytes = 0;
    const timer = setInterval(() => {
      fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${operator}` } })
        .then(async (res) => {
          bytes = (await res.text()).length;
          if (res.status === 200) scrapes++;
          else failed++;
        })
        .catch(() => failed++);
    }, 100);
    let b: LoadResult;
    try {
      b = await run('passthrough-scraped-100ms');
    } finally {
      clearInterval(timer);
    }
    const a2 = await run('passthrough-unscraped-again');
    const mean = (k: 'p50us' | 'p99us' | 'rps' | 'cpuUsPerReq'): number => (a1[k] + a2[k]) / 2;
    const ratio = (k: 'p50us' | 'p99us' | 'rps' | 'cpuUsPerReq'): string => (b[k] / mean(k)).toFixed(3);
    const line =
      `metrics scrape every 100 ms (${scrapes} scrapes of ${(bytes / 1024).toFixed(0)} KB, ${failed} failed) ` +
      `vs none, /v/ passthrough c=16: p50 ×${ratio('p50us')}, p99 ×${ratio('p99us')}, ` +
      `req/s ×${ratio('rps')}, CPU/req ×${ratio('cpuUsPerReq')} (baseline: mean of the runs before and after)`;
    results.notes.push(line);
    log(`  ${line}`);
  } finally {
    await d.stop();
  }
}

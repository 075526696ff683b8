/**
 * Section `scrape` (bench process): does scraping GET /metrics change request latency? /v/ passthrough
 * at c=16 on a 2-worker daemon, without a scraper and with one scraping every 100 ms (an operator token,
 * as Prometheus would), in alternating rounds (order swapped each round, a warm-up pair discarded): each
 * round's ratio compares two windows seconds apart, and the note quotes the median of those ratios. Three
 * single windows (unscraped, scraped, unscraped again) read req/s ×0.82 in one full run and ×1.25 in the
 * one before: they measured the machine's neighbours more than the scraper.
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { drive } from '../support/children.js';
import type { LoadResult, Target } from '../support/driver.js';
import { freePort } from '../support/nginx.js';
import { API, log, ROOT, type BenchContext } from '../support/context.js';
import { spreadOf, type Spread } from '../support/spread.js';

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
    const run = (durationMs: number): Promise<LoadResult> =>
      drive<LoadResult>({
        mode: 'http',
        target,
        pids: [d.pid],
        concurrency: 16,
        durationMs,
        warmupMs: Math.min(P.warmupMs, 500),
        path: API,
      });
    let scrapes = 0;
    let failed = 0;
    let bytes = 0;
    const scraped = async (durationMs: number): Promise<LoadResult> => {
      const timer = setInterval(() => {
        fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${operator}` } })
          .then(async (res) => {
            bytes = (await res.text()).length;
            if (res.status === 200) scrapes++;
            else failed++;
          })
          .catch(() => failed++);
      }, 100);
      try {
        return await run(durationMs);
      } finally {
        clearInterval(timer);
      }
    };
    const rounds = ctx.quick ? 2 : 4;
    const durationMs = Math.max(1000, Math.round(P.durationMs / 2));
    const pairs: { plain: LoadResult; scraped: LoadResult }[] = [];
    for (let round = -1; round < rounds; round++) {
      // Round -1 warms both up and is not recorded; odd rounds scrape first.
      const first = round % 2 === 1 ? await scraped(durationMs) : await run(durationMs);
      const second = round % 2 === 1 ? await run(durationMs) : await scraped(durationMs);
      if (round < 0) continue;
      const pair = round % 2 === 1 ? { plain: second, scraped: first } : { plain: first, scraped: second };
      pairs.push(pair);
      log(
        `  round ${round + 1}/${rounds}: unscraped ${pair.plain.rps.toFixed(0)} req/s p50 ${(pair.plain.p50us / 1000).toFixed(2)} ms · scraped ${pair.scraped.rps.toFixed(0)} req/s p50 ${(pair.scraped.p50us / 1000).toFixed(2)} ms`,
      );
    }
    type Key = 'p50us' | 'p99us' | 'rps' | 'cpuUsPerReq';
    const median = (xs: number[]): number => spreadOf(xs)?.median ?? NaN;
    const ratios = (k: Key): Spread | undefined => spreadOf(pairs.map((p) => p.scraped[k] / p.plain[k]));
    const ratio = (k: Key): string => {
      const r = ratios(k);
      return r ? `×${r.median.toFixed(3)} (${r.min.toFixed(2)}–${r.max.toFixed(2)})` : 'n/a';
    };
    // The load table gets one row per condition: its medians over the rounds.
    const row = (name: string, pick: (p: (typeof pairs)[number]) => LoadResult): void => {
      const all = pairs.map(pick);
      const med = (k: Key): number => median(all.map((r) => r[k]));
      results.load.push({
        target: name,
        generator: 'driver',
        concurrency: 16,
        ...(all[all.length - 1] as LoadResult),
        rps: med('rps'),
        p50us: med('p50us'),
        p99us: med('p99us'),
        cpuUsPerReq: med('cpuUsPerReq'),
      });
    };
    row('passthrough-unscraped', (p) => p.plain);
    row('passthrough-scraped-100ms', (p) => p.scraped);
    const line =
      `metrics scrape every 100 ms (${scrapes} scrapes of ${(bytes / 1024).toFixed(0)} KB, ${failed} failed) ` +
      `vs none, /v/ passthrough c=16, median of ${rounds} alternating rounds of ${durationMs / 1000} s: ` +
      `p50 ${ratio('p50us')}, p99 ${ratio('p99us')}, req/s ${ratio('rps')}, CPU/req ${ratio('cpuUsPerReq')}`;
    results.notes.push(line);
    log(`  ${line}`);
  } finally {
    await d.stop();
  }
}

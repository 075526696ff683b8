/**
 * `npm run bench` (full, ~10 min) / `npm run bench -- --quick` (~2–3 min): every figure is a ratio against
 * baselines measured IN THIS RUN on this machine.
 *
 * Targets, all proxying the same POST to the bench's own HTTPS upstream (bench/support/upstream.ts):
 *   direct          the load generator talks to the upstream itself (TLS, keep-alive)
 *   node-floor      minimal node:http + undici proxy injecting the header (bench/support/node-floor.ts)
 *   nginx           proxy_set_header Authorization, upstream keepalive (installed from Debian if missing)
 *   aivaultd-wN     aivaultd over its unix-socket msgpack protocol, N = 1, 2, 4 request workers
 *   aivaultd-http-* `POST /aivault/proxy` and `/v/{credential}/…` (when the HTTP listener exists)
 * Load: our closed-loop driver (bench/support/driver.ts) for every target (one load generator → fair
 * ratios), plus wrk on the HTTP targets (full run) as a cross-check. Then SSE streaming, 1,000 open
 * streams, large bodies, a stability run, CLI wall time (hyperfine) and micro-benchmarks (bench/micro.ts).
 * Output: bench/results/<date>[-quick].{json,md,svg}; a full run also replaces bench/results/LATEST.md.
 * Flags: --quick, --no-build, --out DIR, --only SECTIONS (load,wrk,http,scrape,stream,open,stability,cli,micro,fleet),
 * --merge FILE.json (re-run --only sections into an earlier run), --render FILE.json, --stability-s N,
 * --shared-ok (measure even when the load average says the machine is busy: bench/load-guard.ts).
 * Targets (PASS/MISS per ratio): bench/targets.ts, printed at the end and in the report and LATEST.md.
 * This file is the orchestrator (bench process): it runs the sections in order — one file each under
 * bench/sections/, against the processes of sections/fixture.ts — then writes the reports.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { resolve } from 'node:path';
import { killChildren } from './support/children.js';
import { countOtherNodeProcesses, machine } from './support/machine.js';
import { parseOptions } from './support/options.js';
import { mergeRerun, writeOutputs } from './support/outputs.js';
import type { Results } from './support/report.js';
import { enforceLoadGuard } from './load-guard.js';
import { log } from './support/context.js';
import { build, startFixture } from './sections/fixture.js';
import { loadDaemonWorkers, loadHttpTargets } from './sections/load.js';
import { wrkSection } from './sections/wrk.js';
import { httpSection } from './sections/http.js';
import { scrapeSection } from './sections/scrape.js';
import { startStreamDaemon, streamSection } from './sections/stream.js';
import { openSection } from './sections/open.js';
import { interleavedSection } from './sections/interleaved.js';
import { stabilitySection } from './sections/stability.js';
import { runCliBench } from './sections/cli.js';
import { fleetSection, microSection } from './sections/micro.js';

const args = process.argv.slice(2);
const opts = parseOptions(args);
const { P, want } = opts;

async function main(): Promise<void> {
  const loadNote = enforceLoadGuard(args);
  const started = Date.now();
  const results: Results = {
    date: new Date().toISOString(),
    mode: opts.quick ? 'quick' : 'full',
    params: P,
    machine: machine(),
    versions: {},
    load: [],
    sse: [],
    openStreams: [],
    large: [],
    stability: undefined,
    crypto: undefined,
    cli: undefined,
    micro: undefined,
    checks: [],
    skipped: [],
    notes: loadNote ? [loadNote] : [],
  };
  if (!opts.noBuild) build(results);
  // 1–3. upstream, dev vault + key, node-floor, nginx
  const fx = await startFixture({ P, quick: opts.quick, results });
  const { httpTargets } = fx;

  // 4. load: HTTP targets (driver; wrk cross-check in a full run)
  log('bench: load (driver) …');
  if (want('load')) await loadHttpTargets(fx, httpTargets);
  if (!fx.wrkWhy && want('wrk')) wrkSection(fx, httpTargets);

  // 5. load: aivaultd over the socket, 1/2/4 workers; crypto utilisation at c=64 with 2 workers
  if (want('load')) await loadDaemonWorkers(fx);

  // 6. aivaultd HTTP listener (POST /aivault/proxy, /v/{credential}/…) — when it exists
  const httpDaemon = await httpSection(fx, httpTargets, want('http'));

  if (want('scrape')) await scrapeSection(fx);

  // 7. streaming: SSE time to first event / inter-event delay (1 and 32 streams), large bodies
  log('bench: streaming …');
  const { d2, streamTargets } = await startStreamDaemon(fx, httpTargets, httpDaemon);
  if (want('stream')) await streamSection(fx, streamTargets);

  // 7b. c=64 ratios from alternating rounds: node-floor, aivaultd over the socket, /v/ passthrough
  if (want('interleaved')) {
    log('bench: interleaved c=64 and c=1 rounds …');
    const names = ['node-floor', 'aivaultd-w2', 'aivaultd-http-passthrough'];
    const all = [...streamTargets, ...httpTargets];
    const c1 = ['direct', ...names];
    await interleavedSection(
      fx,
      names.flatMap((n) => all.find((t) => t.name === n) ?? []),
      c1.flatMap((n) => all.find((t) => t.name === n) ?? []),
    );
  }

  // 8. 1,000 concurrent open streams: aivaultd RSS and event delay (node-floor alongside)
  log(`bench: ${P.openStreams} open streams …`);
  if (want('open')) await openSection(fx, streamTargets);

  // 9. stability: c=64 for 60 s, RSS sampled every second
  log(`bench: stability ${P.stabilityMs / 1000} s …`);
  if (want('stability')) await stabilitySection(fx, d2);

  // 10. CLI wall time: aivault invoke vs node -e 0 vs curl (same upstream), hyperfine when available
  log('bench: CLI …');
  if (want('cli')) results.cli = runCliBench(fx, d2.socketPath);
  await d2.stop();
  if (httpDaemon) await httpDaemon.stop();

  // 11. micro-benchmarks
  log('bench: micro …');
  if (want('micro')) microSection(fx);

  // 12. fleet admission (issue 18): local SharedArrayBuffer vs Redis, rows appended to the micro table
  if (want('fleet')) fleetSection(fx);

  // teardown
  await fx.stop();
  results.machine.loadavgEnd = loadavg().map((x) => Number(x.toFixed(2)));
  results.machine.otherNodeProcessesAtEnd = countOtherNodeProcesses();
  results.versions.node = process.version;
  results.versions.wrk = spawnSync('wrk', ['-v'], { encoding: 'utf8' }).stdout?.split('\n')[0]?.trim() ?? '';
  results.versions.hyperfine =
    spawnSync('hyperfine', ['--version'], { encoding: 'utf8' }).stdout?.trim() ?? '';
  if (opts.merge) mergeRerun(results, opts.merge, { want, only: opts.only, P, started });
  results.elapsedS = results.elapsedS ?? Math.round((Date.now() - started) / 1000);
  fx.removeWorkDir();
  await writeOutputs(results, opts.out);
}

if (args.includes('--render')) {
  // Re-render an existing results file (after a report change): no measuring.
  const file = resolve(args[args.indexOf('--render') + 1] as string);
  await writeOutputs(JSON.parse(readFileSync(file, 'utf8')) as Results, opts.out);
  process.exit(0);
}

process.on('SIGINT', () => (killChildren(), process.exit(130)));
main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  killChildren();
  process.exit(1);
});

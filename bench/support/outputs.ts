/**
 * Writing a bench run's results (bench process): re-evaluate the targets, write <stamp>[-quick].{json,md,svg}
 * into the output folder (and LATEST.md for a full run), and fold a partial re-run (--only … --merge FILE)
 * into an earlier run's results.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { log, type Params } from './context.js';
import { evaluateTargets, formatTargets } from '../targets.js';
import { renderChart } from './chart.js';
import { renderLatest, renderMarkdown, type Results } from './report.js';

/** Re-evaluate the targets and write <stamp>.{json,md,svg} + LATEST.md. */
export async function writeOutputs(results: Results, out: string): Promise<void> {
  results.checks = evaluateTargets(results);
  log(formatTargets(results.checks));
  mkdirSync(out, { recursive: true });
  const stamp = results.date.slice(0, 16).replace(/[:T]/g, '-');
  const quick = results.mode === 'quick';
  const base = join(out, `${stamp}${quick ? '-quick' : ''}`);
  writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`);
  const svgName = `${stamp}${quick ? '-quick' : ''}.svg`;
  writeFileSync(`${base}.svg`, await renderChart(results));
  writeFileSync(`${base}.md`, renderMarkdown(results, svgName));
  // LATEST.md is what the README quotes: only a full run replaces it.
  if (!quick) writeFileSync(join(out, 'LATEST.md'), renderLatest(results, stamp));
  process.stdout.write(renderLatest(results, `${stamp}${quick ? '-quick' : ''}`));
  log(
    `bench: wrote ${base}.{json,md,svg}${quick ? '' : ` and ${join(out, 'LATEST.md')}`} in ${results.elapsedS} s`,
  );
}

/** Re-ran some sections (--only …) to replace them in an earlier full run's results (`file`). */
export function mergeRerun(
  results: Results,
  file: string,
  run: {
    readonly want: (section: string) => boolean;
    readonly only: ReadonlySet<string> | undefined;
    readonly P: Params;
    readonly started: number;
  },
): void {
  const { want, P } = run;
  const prev = JSON.parse(readFileSync(file, 'utf8')) as Results;
  if (want('stream')) {
    prev.sse = results.sse;
    prev.large = results.large;
    prev.params = { ...prev.params, sseEvents: P.sseEvents, sseInterval: P.sseInterval };
  }
  if (want('open')) {
    prev.openStreams = results.openStreams;
    prev.idle = results.idle;
  }
  if (want('stability')) prev.stability = results.stability;
  if (want('cli')) prev.cli = results.cli;
  if (want('micro') || want('fleet')) prev.micro = results.micro;
  prev.notes.push(
    `Sections ${[...(run.only ?? [])].join(', ')} were re-run at ${results.date} (load average then ${results.machine.loadavgStart.join(' / ')}) and merged into this run.`,
  );
  prev.elapsedS = (prev.elapsedS ?? 0) + Math.round((Date.now() - run.started) / 1000);
  Object.assign(results, prev);
}

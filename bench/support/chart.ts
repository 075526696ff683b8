/** Throughput and p99 latency vs concurrency per target, rendered to SVG with vega-lite + vega (headless). */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { Results } from './report.js';

export async function renderChart(r: Results): Promise<string> {
  const values = r.load
    .filter((x) => x.generator === 'driver')
    .map((x) => ({
      target: x.target,
      concurrency: x.concurrency,
      rps: Math.round(x.rps),
      p99ms: x.p99us / 1000,
      p50ms: x.p50us / 1000,
    }));
  const enc = (field: string, title: string, log = false) => ({
    x: {
      field: 'concurrency',
      type: 'quantitative' as const,
      scale: { type: 'log' as const, base: 2 },
      axis: { values: r.params.conc },
      title: 'concurrency',
    },
    y: { field, type: 'quantitative' as const, title, ...(log ? { scale: { type: 'log' as const } } : {}) },
    color: { field: 'target', type: 'nominal' as const, title: 'target' },
  });
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `aivault bench ${r.date.slice(0, 10)} (${r.mode}) — ${r.machine.cores} cores, ${r.machine.cpuModel}`,
      fontSize: 12,
    },
    data: { values },
    hconcat: [
      {
        width: 320,
        height: 240,
        title: 'throughput (req/s)',
        mark: { type: 'line', point: true },
        encoding: enc('rps', 'req/s'),
      },
      {
        width: 320,
        height: 240,
        title: 'p99 latency (ms, log)',
        mark: { type: 'line', point: true },
        encoding: enc('p99ms', 'p99 ms', true),
      },
      {
        width: 320,
        height: 240,
        title: 'p50 latency (ms, log)',
        mark: { type: 'line', point: true },
        encoding: enc('p50ms', 'p50 ms', true),
      },
    ],
    config: { background: 'white' },
  };
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

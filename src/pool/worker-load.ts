/**
 * Measures what src/pool/worker-spread.ts decides on, from the main thread, without a message to any
 * worker: each active worker's event-loop utilisation (Worker#performance, read across threads by Node),
 * the machine's idle CPU (os.cpus() times) and this process's own CPU (process.cpuUsage(), all threads).
 * One measurement per window; the first one only sets the baseline.
 */
import { cpus } from 'node:os';
import type { EventLoopUtilization } from 'node:perf_hooks';
import type { Worker } from 'node:worker_threads';
import type { SpreadSample } from './worker-spread.js';

export type MeasureLoad = (active: readonly Worker[]) => SpreadSample | undefined;

interface CpuTimes {
  readonly atMs: number;
  /** Every CPU's idle and total time, ms. */
  readonly idleMs: number;
  readonly totalMs: number;
  /** This process, all threads, µs. */
  readonly ownUs: number;
}

function cpuTimes(): CpuTimes {
  let idleMs = 0;
  let totalMs = 0;
  for (const c of cpus()) {
    const t = c.times;
    idleMs += t.idle;
    totalMs += t.user + t.nice + t.sys + t.idle + t.irq;
  }
  const own = process.cpuUsage();
  return { atMs: performance.now(), idleMs, totalMs, ownUs: own.user + own.system };
}

export function createLoadMeter(): MeasureLoad {
  let last = cpuTimes();
  const elus = new WeakMap<Worker, EventLoopUtilization>();
  return (active) => {
    let sum = 0;
    let n = 0;
    for (const w of active) {
      const now = w.performance.eventLoopUtilization();
      const prev = elus.get(w);
      elus.set(w, now);
      if (prev) {
        sum += w.performance.eventLoopUtilization(now, prev).utilization;
        n++;
      }
    }
    const cur = cpuTimes();
    const windowMs = cur.atMs - last.atMs;
    const idleCores = (cur.idleMs - last.idleMs) / windowMs;
    const busyCores = (cur.totalMs - last.totalMs - (cur.idleMs - last.idleMs)) / windowMs;
    const ownCores = (cur.ownUs - last.ownUs) / 1000 / windowMs;
    last = cur;
    // A window with no worker measured twice yet (start, a replaced worker) decides nothing.
    if (n === 0 || !(windowMs > 0)) return undefined;
    return {
      activeElu: sum / n,
      idleCores: Math.max(0, idleCores),
      otherCores: Math.max(0, busyCores - ownCores),
    };
  };
}

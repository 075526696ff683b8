/**
 * Measures what src/pool/worker-spread.ts decides on, from the main thread, without a message to any
 * worker: each active worker's event-loop utilisation (Worker#performance, read across threads by Node),
 * the machine's idle CPU (os.cpus() times) and this process's own CPU (process.cpuUsage(), all threads).
 * One measurement per window; the first one only sets the baseline. Under a cgroup CPU quota (a container
 * started with --cpus, a systemd CPUQuota) the idle cores os.cpus() reports are the host's, not ours: the
 * idle figure is capped at what the quota leaves this process, so a throttled daemon never grows its set.
 */
import { readFileSync } from 'node:fs';
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

/**
 * Cores this process may use under its cgroup's CPU quota, or undefined (no quota, or not Linux). cgroup
 * v2: `cpu.max` ("max 100000" or "<quota> <period>"); v1: `cpu.cfs_quota_us` / `cpu.cfs_period_us`
 * (quota -1: none), under the cgroup path /proc/self/cgroup names for the cpu controller.
 */
export function cgroupCpuLimit(
  read: (path: string) => string = (p) => readFileSync(p, 'utf8'),
): number | undefined {
  const attempt = (f: () => number | undefined): number | undefined => {
    try {
      return f();
    } catch {
      return undefined;
    }
  };
  let cgroups: string;
  try {
    cgroups = read('/proc/self/cgroup');
  } catch {
    return undefined; // not Linux, or no /proc
  }
  const limits: number[] = [];
  for (const line of cgroups.split('\n')) {
    const [, controllers, path] = /^\d+:([^:]*):(.*)$/.exec(line.trim()) ?? [];
    if (path === undefined || controllers === undefined) continue;
    const dir = path === '/' ? '' : path;
    if (controllers === '') {
      const v2 = attempt(() => {
        const [quota, period] = read(`/sys/fs/cgroup${dir}/cpu.max`).trim().split(/\s+/);
        return quota === 'max' || !period ? undefined : Number(quota) / Number(period);
      });
      if (v2 !== undefined) limits.push(v2);
    } else if (controllers.split(',').includes('cpu')) {
      for (const mount of [`/sys/fs/cgroup/${controllers}`, '/sys/fs/cgroup/cpu']) {
        const v1 = attempt(() => {
          const quota = Number(read(`${mount}${dir}/cpu.cfs_quota_us`).trim());
          const period = Number(read(`${mount}${dir}/cpu.cfs_period_us`).trim());
          return quota > 0 && period > 0 ? quota / period : undefined;
        });
        if (v1 !== undefined) {
          limits.push(v1);
          break;
        }
      }
    }
  }
  const valid = limits.filter((x) => Number.isFinite(x) && x > 0);
  return valid.length > 0 ? Math.min(...valid) : undefined;
}

/** Idle cores this process could still use: the machine's idle, capped by what a quota leaves it. */
export function usableIdleCores(idleCores: number, ownCores: number, limitCores: number | undefined): number {
  const idle = Math.max(0, idleCores);
  return limitCores === undefined ? idle : Math.min(idle, Math.max(0, limitCores - ownCores));
}

export function createLoadMeter(opts: { readonly cpuLimitCores?: number | null } = {}): MeasureLoad {
  // null: no quota (tests); undefined: read this process's cgroup once.
  const limit = opts.cpuLimitCores === null ? undefined : (opts.cpuLimitCores ?? cgroupCpuLimit());
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
      idleCores: usableIdleCores(idleCores, ownCores, limit),
      otherCores: Math.max(0, busyCores - ownCores),
    };
  };
}

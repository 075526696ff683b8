/** /proc readings for a process tree: CPU (utime+stime of all threads) and RSS. Linux only. */
import { readFileSync, readdirSync } from 'node:fs';

const TICK_US = 1_000_000 / 100; // USER_HZ is 100 on Linux
const PAGE = 4096;

function statFields(pid: number): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The pid plus all its descendants (nginx master + workers). */
export function processTree(root: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const f = statFields(Number(d));
    if (f) parent.set(Number(d), Number(f[1]));
  }
  const out = [root];
  for (let i = 0; i < out.length; i++) {
    for (const [pid, pp] of parent) if (pp === out[i]) out.push(pid);
  }
  return out;
}

/** CPU µs (user+system, every thread) summed over the pids. */
export function cpuMicros(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const f = statFields(pid);
    if (f) ticks += Number(f[11]) + Number(f[12]);
  }
  return ticks * TICK_US;
}

/** Resident set size in bytes, summed over the pids. */
export function rssBytes(pids: readonly number[]): number {
  let pages = 0;
  for (const pid of pids) {
    const f = statFields(pid);
    if (f) pages += Number(f[21]);
  }
  return pages * PAGE;
}

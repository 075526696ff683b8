/**
 * The machine a bench run measured on (bench process): CPU, memory, kernel, OS, Node, load average, and
 * how many other node/vitest/esbuild/tsc processes were running (the bench's own tree excluded).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import type { Results } from './report.js';

export function machine(): Results['machine'] {
  const cpu = cpus();
  let distro = '';
  try {
    distro = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '';
  } catch {
    /* not Linux */
  }
  return {
    cpuModel: cpu[0]?.model ?? 'unknown',
    cores: cpu.length,
    memGB: Math.round(totalmem() / 1073741824),
    kernel: release(),
    os: distro,
    node: process.version,
    loadavgStart: loadavg().map((x) => Number(x.toFixed(2))),
    loadavgEnd: [],
    otherNodeProcessesAtStart: countOtherNodeProcesses(),
  };
}

/**
 * Node-ish processes that are not this bench: the bench's own process tree (upstream, driver, daemons,
 * the npm that started it) is excluded, or every run would call itself "shared".
 */
/**
 * A zombie (state Z: exited, not yet reaped by its parent) uses no CPU; counting one called a quiet machine
 * busy. `stat`: the text of /proc/<pid>/stat ("pid (comm) state …"; comm may hold spaces and parentheses).
 */
export function isZombie(stat: string): boolean {
  const end = stat.lastIndexOf(')');
  return end >= 0 && stat.charAt(end + 2) === 'Z';
}

export function countOtherNodeProcesses(): number {
  const parentOf = (pid: string): string | undefined => {
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid …" — comm may hold spaces, so split after the last ')'.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1];
    } catch {
      return undefined;
    }
  };
  const ours = new Set<string>([String(process.pid)]);
  for (let p = parentOf(String(process.pid)); p && p !== '0' && p !== '1'; p = parentOf(p)) ours.add(p);
  const inOurTree = (pid: string): boolean => {
    for (let p: string | undefined = pid, hops = 0; p && p !== '0' && hops < 64; p = parentOf(p), hops++) {
      if (p === String(process.pid)) return true;
    }
    return ours.has(pid);
  };
  let n = 0;
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || inOurTree(d)) continue;
    try {
      if (!/^(node|vitest|esbuild|tsc)/.test(readFileSync(`/proc/${d}/comm`, 'utf8'))) continue;
      if (!isZombie(readFileSync(`/proc/${d}/stat`, 'utf8'))) n++;
    } catch {
      /* gone */
    }
  }
  return n;
}

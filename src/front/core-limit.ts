/**
 * Core dumps off for aivaultd: a core file would hold whatever secrets were in memory at the crash.
 *
 * Node has no setrlimit/prctl API, so the daemon asks util-linux `prlimit` (part of every Debian/Ubuntu
 * base system) to set its own RLIMIT_CORE to 0 soft and hard. Lowering one's own limit needs no privilege,
 * and a hard limit of 0 cannot be raised again by anything running as the user. Done once at start-up,
 * before any worker thread exists (threads share the process's limits). A native addon for
 * prctl(PR_SET_DUMPABLE) would also block same-user ptrace, but would make every install compile C.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export type CoreLimitResult = { ok: true; changed: boolean } | { ok: false; reason: string };

/** "soft hard" from /proc/<pid>/limits, e.g. "0 0" or "unlimited unlimited"; undefined off Linux. */
export function coreLimitOf(pid: number | 'self' = 'self'): string | undefined {
  try {
    const line = readFileSync(`/proc/${pid}/limits`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max core file size'));
    const m = line && /^Max core file size\s+(\S+)\s+(\S+)/.exec(line);
    return m ? `${m[1]} ${m[2]}` : undefined;
  } catch {
    return undefined;
  }
}

export function disableCoreDumps(): CoreLimitResult {
  if (process.platform !== 'linux') return { ok: false, reason: `not supported on ${process.platform}` };
  if (coreLimitOf() === '0 0') return { ok: true, changed: false };
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), '--core=0:0'], { stdio: 'ignore', timeout: 5000 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { ok: false, reason: code === 'ENOENT' ? 'prlimit (util-linux) not found' : 'prlimit failed' };
  }
  const now = coreLimitOf();
  return now === '0 0' ? { ok: true, changed: true } : { ok: false, reason: `core limit is still ${now}` };
}

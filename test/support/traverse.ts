/**
 * Tests that run aivaultd as another OS user (system mode, the not-dumpable check) need that user to
 * reach this checkout's dist/ and node_modules/. A checkout under a private directory (say /root/…) is
 * not reachable, so the search bit for others is added to each ancestor that lacks it, and `restore()`
 * puts the modes back. Search only: nothing becomes listable or readable that was not already.
 */
import { chmodSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export function makeTraversable(path: string = process.cwd()): { restore(): void } {
  const changed: [string, number][] = [];
  for (let dir = resolve(path); ; dir = dirname(dir)) {
    const mode = statSync(dir).mode & 0o7777;
    if ((mode & 0o001) === 0) {
      chmodSync(dir, mode | 0o001);
      changed.push([dir, mode]);
    }
    if (dir === dirname(dir)) break;
  }
  return {
    restore: () => {
      for (const [dir, mode] of changed.reverse()) chmodSync(dir, mode);
    },
  };
}

/**
 * Notices vault writes made outside the daemon (a hand edit, another tool, an in-process CLI) and bumps
 * the vault generation (src/core/threads/generation.ts) so every thread's caches reload and re-validate the
 * files exactly as a first load does: a tampered file still fails closed. Runs on the daemon's main
 * thread. Writes made by the daemon itself bump the generation before they answer; their events here
 * only cause one extra reload.
 *
 * Two mechanisms, because fs.watch (inotify) can miss events (queue overflow, a directory replaced):
 * - fs.watch on the vault directory and on its secrets directory, filtered to the files caches read;
 * - a safety-net poll (default every 5 s) that stats those files and bumps when any stat changed.
 *
 * Ordering: an inotify event is queued by the kernel when the write happens, so it is ready before a
 * request the writer sends afterwards, and libuv dispatches ready descriptors in readiness order: the
 * bump lands before the request is routed. fs.watch from node:fs, not chokidar: two non-recursive
 * directories need none of its features, and no dependency is added to the daemon.
 */
import { watch, promises as fsp, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import type { VaultPaths } from '../stores/vault/paths.js';
import type { Generation } from '../core/threads/generation.js';

/** Files in the vault directory that some cache reads (everything else there is ignored). */
const ROOT_FILES = new Set(['vault.json', 'broker.json', 'capabilities.json', 'tokens.json', 'secrets']);

const VAULT_POLL_MS = 5000;

export interface VaultWatcherOptions {
  /** fs.watch the directories (default true). Tests turn it off to prove the poll and the bumps alone. */
  readonly watch?: boolean;
  readonly pollMs?: number;
}

export interface VaultWatcher {
  close(): void;
}

function statKey(st: { mtimeMs: number; ctimeMs: number; size: number; ino: number } | undefined): string {
  return st ? `${st.mtimeMs}:${st.ctimeMs}:${st.size}:${st.ino}` : '-';
}

/** One string that changes whenever a file a cache reads changed (stat of each, secrets included). */
async function fingerprint(paths: VaultPaths): Promise<string> {
  const stat = (p: string): Promise<string> => fsp.stat(p).then(statKey, () => statKey(undefined));
  const names = await fsp.readdir(paths.secretsDir).catch(() => [] as string[]);
  const keys = await Promise.all(
    [paths.vaultJson, paths.brokerJson, paths.capabilitiesJson, join(paths.root, 'tokens.json')]
      .concat(
        paths.secretsDir,
        names.sort().map((n) => join(paths.secretsDir, n)),
      )
      .map(async (p) => `${p}=${await stat(p)}`),
  );
  return keys.join('|');
}

export function startVaultWatcher(
  paths: VaultPaths,
  generation: Generation,
  opts: VaultWatcherOptions = {},
): VaultWatcher {
  let closed = false;
  let rootWatcher: FSWatcher | undefined;
  let secretsWatcher: FSWatcher | undefined;
  const bump = (): void => void generation.bump();

  const watchDir = (dir: string, relevant: (name: string | null) => boolean): FSWatcher | undefined => {
    try {
      const w = watch(dir, { persistent: false }, (_event, name) => {
        if (relevant(name)) bump();
      });
      // The directory vanished or the watch broke: drop it (the poll re-arms it and notices the change).
      w.on('error', () => {
        w.close();
        if (rootWatcher === w) rootWatcher = undefined;
        if (secretsWatcher === w) secretsWatcher = undefined;
        bump();
      });
      return w;
    } catch {
      return undefined; // not there yet (fresh vault): the poll tries again
    }
  };

  const arm = (): void => {
    if (opts.watch === false || closed) return;
    rootWatcher ??= watchDir(paths.root, (name) => {
      if (name === 'secrets') arm(); // created (or replaced) after start
      return name === null || ROOT_FILES.has(name);
    });
    secretsWatcher ??= watchDir(paths.secretsDir, (name) => name === null || name.endsWith('.json'));
  };
  arm();

  let last: string | undefined;
  let polling = false;
  const poll = async (): Promise<void> => {
    if (polling) return;
    polling = true;
    try {
      const now = await fingerprint(paths);
      if (last !== undefined && now !== last && !closed) bump();
      last = now;
      arm();
    } finally {
      polling = false;
    }
  };
  void poll();
  const timer = setInterval(() => void poll(), opts.pollMs ?? VAULT_POLL_MS);
  timer.unref();

  return {
    close() {
      closed = true;
      clearInterval(timer);
      rootWatcher?.close();
      secretsWatcher?.close();
    },
  };
}

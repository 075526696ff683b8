/**
 * File storage discipline for everything under the vault root: 0600 files, 0700 dirs, atomic writes
 * (temp file in the same dir → fsync → rename → fsync dir), and a cross-process lock around
 * read-modify-write. Never holds or logs secret plaintext; callers pass already-encrypted records.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp, constants as fsc } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import lockfile from 'proper-lockfile';
import type { Config } from '../../core/config/env.js';
import { AivaultError } from '../../core/errors.js';

export const FILE_MODE = 0o600;
export const DIR_MODE = 0o700;
/** Staging files start with this prefix; listings must skip them. */
export const STAGING_PREFIX = '.tmp-';

export function isStagingName(name: string): boolean {
  return name.startsWith(STAGING_PREFIX) || name.endsWith('.lock');
}

export async function ensureDir(path: string, mode = DIR_MODE): Promise<void> {
  await fsp.mkdir(path, { recursive: true, mode });
  // mkdir's mode is masked by umask and not applied to existing dirs; enforce it.
  await fsp.chmod(path, mode);
}

/** Atomically replace `path` with `data`. A crash leaves either the old or the new file, never a mix. */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = FILE_MODE,
): Promise<void> {
  const dir = dirname(path);
  await fsp.mkdir(dir, { recursive: true, mode: DIR_MODE });
  const tmp = join(
    dir,
    `${STAGING_PREFIX}${basename(path)}-${process.pid}-${randomBytes(6).toString('hex')}`,
  );
  const handle = await fsp.open(tmp, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, mode);
  try {
    await handle.writeFile(data);
    await handle.chmod(mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fsp.rename(tmp, path);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await syncDir(dir);
}

async function syncDir(dir: string): Promise<void> {
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(dir, fsc.O_RDONLY);
    await handle.sync();
  } catch {
    // Some filesystems refuse fsync on directories; the rename is still atomic.
  } finally {
    await handle?.close();
  }
}

export async function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Read and parse a JSON file. Missing → `undefined`. Unparseable → `storage_corrupt` naming the file
 * (never a stack trace, never a silent default that could widen policy).
 */
export async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AivaultError(
      'storage_corrupt',
      `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      {
        file: path,
      },
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AivaultError('storage_corrupt', `${path} is not valid JSON (corrupt or hand-edited)`, {
      file: path,
    });
  }
}

/** Names in `dir` that are real records (no staging or lock files). Missing dir → []. */
export async function listRecordFiles(dir: string, suffix = '.json'): Promise<string[]> {
  try {
    const names = await fsp.readdir(dir);
    return names.filter((n) => !isStagingName(n) && n.endsWith(suffix)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

const LOCK_STALE_MS = 10_000;

/**
 * Shorter lock staleness per vault root, from Config.testing (startDaemon's `testing` option, in-process
 * tests only; loadConfig never sets it). Per root and per thread, not a parameter: the vault, catalog and
 * token stores take the lock with nothing but a root path, from ~20 call sites.
 */
const testStaleMs = new Map<string, number>();

/**
 * Apply (or clear) `config.testing.storeLockStaleMs` for this thread's locks on `config.vaultDir`. Called
 * at start-up by the daemon threads that take store locks: the main thread (token mint/revoke) and the
 * crypto worker (vault writes, operator commands); request workers take none.
 */
export function useTestLockStaleness(config: Pick<Config, 'vaultDir' | 'testing'>): void {
  const ms = config.testing?.storeLockStaleMs;
  if (ms === undefined) testStaleMs.delete(config.vaultDir);
  else testStaleMs.set(config.vaultDir, ms);
}

/** How long a lock under `root` may go without a refresh before it is taken over (default: `fallbackMs`). */
export function lockStaleMs(root: string, fallbackMs: number): number {
  return testStaleMs.get(root) ?? fallbackMs;
}

/** A staging file this old was abandoned by its writer even if its pid looks alive (pid reuse). */
const STAGING_ABANDONED_MS = 60 * 60_000;
/** Never touch a staging file younger than this: its writer may be mid-write in another pid namespace. */
const STAGING_MIN_AGE_MS = 60_000;
const STAGING_PID = /-(\d+)-[0-9a-f]{12}$/;
const sweptRoots = new Set<string>();

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

/**
 * Remove staging files left by writers killed between create and rename (SIGKILL, OOM, power loss).
 * Listings already skip them, and they hold only ciphertext, but nothing else would ever delete them.
 * A file goes when it is older than a minute AND its writer pid is gone (or it is over an hour old, for
 * reused pids); the rule can only ever leave a dead file behind, never delete a live write. Runs under the
 * vault lock, once per process per vault, over the directories writeFileAtomic stages in.
 */
export async function sweepAbandonedStaging(root: string, nowMs = Date.now()): Promise<number> {
  let removed = 0;
  for (const dir of [root, join(root, 'secrets')]) {
    let names: string[];
    try {
      names = await fsp.readdir(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (!name.startsWith(STAGING_PREFIX)) continue;
      const pid = Number(STAGING_PID.exec(name)?.[1] ?? NaN);
      const path = join(dir, name);
      try {
        const age = nowMs - (await fsp.lstat(path)).mtimeMs;
        if (age < STAGING_MIN_AGE_MS) continue;
        if (age < STAGING_ABANDONED_MS && Number.isSafeInteger(pid) && pidAlive(pid)) continue;
        await fsp.rm(path, { force: true });
        removed++;
      } catch {
        // Gone already, or not ours to remove: leave it.
      }
    }
  }
  return removed;
}

/**
 * Run `fn` while holding the vault-wide write lock (`<root>/.vault.lock`). Every read-modify-write of
 * vault files goes through here so concurrent CLI processes and the daemon never lose each other's writes.
 * proper-lockfile uses an atomic mkdir plus mtime refresh, so a SIGKILLed holder goes stale and is reclaimed.
 */
export async function withVaultLock<T>(root: string, fn: () => Promise<T>): Promise<T> {
  await ensureDir(root);
  let release: (() => Promise<void>) | undefined;
  const stale = lockStaleMs(root, LOCK_STALE_MS);
  try {
    release = await lockfile.lock(root, {
      lockfilePath: join(root, '.vault.lock'),
      stale,
      update: stale / 4,
      realpath: false,
      retries: { retries: 400, factor: 1.2, minTimeout: 5, maxTimeout: 100, randomize: true },
    });
  } catch (err) {
    throw new AivaultError(
      'vault_unavailable',
      `could not lock the vault at ${root}: ${(err as Error).message}`,
    );
  }
  try {
    if (!sweptRoots.has(root)) {
      sweptRoots.add(root);
      await sweepAbandonedStaging(root);
    }
    return await fn();
  } finally {
    await release().catch(() => undefined);
  }
}

/**
 * The run dir (socket, pid file, http.json, log) is created and written without following a symlink:
 * same-user code that pre-plants `run` as a link, or a link at a file path inside it, would otherwise make
 * the daemon chmod or write through it (issue 19). The dir is opened with O_NOFOLLOW|O_DIRECTORY and
 * chmod'ed through that descriptor (no check-then-use race on the path), and files inside are opened with
 * O_NOFOLLOW. Anything unexpected (a link, a non-directory, another owner) stops start-up with a clear
 * `daemon_unavailable` error instead of being repaired.
 */
import { constants as fsc, promises as fsp } from 'node:fs';
import { dirname } from 'node:path';
import { AivaultError } from '../core/errors.js';

export interface RunDirOptions {
  /** Accept a dir owned by root (left as it is), for a group-shared dir an admin prepared (--shared). */
  readonly allowRootOwned?: boolean;
}

const refuse = (what: string): AivaultError =>
  new AivaultError('daemon_unavailable', `refusing to start: ${what}`);

/** Create `dir` if needed and make sure it is a real directory we own with exactly `mode`. */
export async function prepareRunDir(dir: string, mode: number, opts: RunDirOptions = {}): Promise<void> {
  await fsp.mkdir(dirname(dir), { recursive: true, mode: 0o700 });
  try {
    await fsp.mkdir(dir, { mode });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  let handle;
  try {
    handle = await fsp.open(dir, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ELOOP' && code !== 'ENOTDIR') throw err;
    // O_DIRECTORY reports a link as ENOTDIR: lstat only to word the error.
    const link = await fsp.lstat(dir).then(
      (s) => s.isSymbolicLink(),
      () => false,
    );
    throw refuse(`the run dir ${dir} is ${link ? 'a symlink' : 'not a directory'}`);
  }
  try {
    const st = await handle.stat();
    const uid = process.getuid?.();
    if (uid === undefined || st.uid === uid) await handle.chmod(mode);
    else if (!(opts.allowRootOwned && st.uid === 0)) {
      throw refuse(`the run dir ${dir} is owned by uid ${st.uid}, not ${uid}`);
    }
  } finally {
    await handle.close();
  }
}

/** Open a file in the run dir for writing (created 0600, truncated), refusing a symlink at `path`. */
export async function openRunFile(path: string, flags: 'w' | 'a' = 'w'): Promise<fsp.FileHandle> {
  const mode = flags === 'a' ? fsc.O_APPEND : fsc.O_TRUNC;
  try {
    const handle = await fsp.open(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_NOFOLLOW | mode, 0o600);
    const st = await handle.stat();
    if (!st.isFile()) {
      await handle.close();
      throw refuse(`${path} is not a regular file`);
    }
    return handle;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw refuse(`${path} is a symlink`);
    throw err;
  }
}

/** Write a whole run-dir file (pid file, http.json) through openRunFile. */
export async function writeRunFile(path: string, data: string): Promise<void> {
  const handle = await openRunFile(path);
  try {
    await handle.writeFile(data);
  } finally {
    await handle.close();
  }
}

/** Linux O_PATH (same value on x86-64 and arm64); Node does not export it. */
const O_PATH = 0o10000000;

/**
 * Give the socket uWS just created its mode. uSockets creates it 0600 whatever the umask, and chmod(2)
 * follows a symlink that a group member of a --shared dir could swap in, so on Linux the socket itself is
 * pinned with O_PATH|O_NOFOLLOW, checked to be a socket through that descriptor, and chmod'ed through
 * /proc/self/fd. Elsewhere: lstat, then chmod (a narrow race, only with a group-writable dir).
 */
export async function chmodSocket(path: string, mode: number): Promise<void> {
  if (process.platform !== 'linux') {
    if (!(await fsp.lstat(path)).isSocket()) throw refuse(`${path} is not a socket`);
    await fsp.chmod(path, mode);
    return;
  }
  const handle = await fsp.open(path, O_PATH | fsc.O_NOFOLLOW);
  try {
    if (!(await handle.stat()).isSocket()) throw refuse(`${path} is not a socket`);
    await fsp.chmod(`/proc/self/fd/${handle.fd}`, mode);
  } finally {
    await handle.close();
  }
}

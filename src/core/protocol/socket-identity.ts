/**
 * Is the socket we are about to talk to our daemon's? Checked before the CLI sends anything secret (a
 * passphrase, an operator credential): a process that planted its own listener, or a symlink, at the
 * socket path would otherwise receive it in clear (issue 19, socket squatting).
 *
 * Only `lstat` is used, so nothing is followed: the run dir and the socket must be the objects themselves,
 * owned by the expected uid (the user, or the `aivault` user in system mode), the dir with exactly the
 * configured mode (no other user can add or swap entries) and the socket a socket. The daemon creates both
 * that way (src/front/run-dir.ts); anything else is refused with `daemon_unavailable`.
 */
import { promises as fsp, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { fail, ok, type Result } from '../errors.js';

export interface SocketIdentityOptions {
  /** uid that must own the run dir and the socket (default: this process's uid). */
  readonly expectedUid?: number;
  /** Exact permission bits the run dir must have (default 0700). */
  readonly dirMode?: number;
}

const describeMode = (m: number): string => `0${(m & 0o777).toString(8)}`;

async function lstatOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await fsp.lstat(path);
  } catch {
    return undefined;
  }
}

export async function verifyDaemonSocket(
  socketPath: string,
  opts: SocketIdentityOptions = {},
): Promise<Result<void>> {
  const uid = opts.expectedUid ?? process.getuid?.();
  const dirMode = opts.dirMode ?? 0o700;
  const refuse = (why: string): Result<never> =>
    fail('daemon_unavailable', `refusing to trust the daemon socket ${socketPath}: ${why}`);
  const dir = dirname(socketPath);
  const d = await lstatOrUndefined(dir);
  if (!d) return refuse(`its directory ${dir} does not exist`);
  if (d.isSymbolicLink()) return refuse(`its directory ${dir} is a symlink`);
  if (!d.isDirectory()) return refuse(`${dir} is not a directory`);
  if (uid !== undefined && d.uid !== uid) return refuse(`${dir} is owned by uid ${d.uid}, not ${uid}`);
  if ((d.mode & 0o777) !== (dirMode & 0o777)) {
    return refuse(`${dir} has mode ${describeMode(d.mode)}, expected ${describeMode(dirMode)}`);
  }
  const s = await lstatOrUndefined(socketPath);
  if (!s) return refuse('nothing is there');
  if (s.isSymbolicLink()) return refuse('it is a symlink');
  if (!s.isSocket()) return refuse('it is not a socket');
  if (uid !== undefined && s.uid !== uid) return refuse(`it is owned by uid ${s.uid}, not ${uid}`);
  return ok(undefined);
}

/** verifyDaemonSocket that throws its `daemon_unavailable` error (for callers that propagate errors). */
export async function assertDaemonSocket(
  socketPath: string,
  opts: SocketIdentityOptions = {},
): Promise<void> {
  const r = await verifyDaemonSocket(socketPath, opts);
  if (!r.ok) throw r.error;
}

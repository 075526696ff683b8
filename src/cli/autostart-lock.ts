/**
 * The autostart lock (proper-lockfile), in its own module so the CLI loads it only when it has to start
 * aivaultd: proper-lockfile pulls in graceful-fs and friends (~50 KB of JS), and an `aivault invoke`
 * with a running daemon never gets that far (issue 12). A static default import here, because a dynamic
 * import of this CommonJS package does not expose `lock` the same way under tsc, tsx and esbuild.
 */
import lockfile from 'proper-lockfile';

export const lockDir: typeof lockfile.lock = (dir, opts) => lockfile.lock(dir, opts);

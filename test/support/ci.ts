/**
 * Tests that need something CI always has (root, to create a second user or mount a tmpfs; a real Secret
 * Service) skip on a developer's machine, but never in CI: CI runs as root with a keyring (.ci/run, `npm
 * test`), so a skip there would mean a protection went untested while the run looked green.
 */
import { it } from 'vitest';

/** `CI` set to anything but empty/"false"/"0" (GitHub Actions, GitLab, … and .ci/run set CI=true). */
export const inCi = !['', 'false', '0'].includes(process.env.CI ?? '');

/**
 * For `describe.skipIf(…)` / `it.skipIf(…)`: true (skip) when `ready` is false outside CI. Under CI a
 * would-be skip registers, in the current suite, a failing test that says what was missing instead.
 */
export function skipOutsideCi(ready: boolean, what: string): boolean {
  if (ready) return false;
  if (inCi) {
    it(`runs in CI: ${what}`, () => {
      throw new Error(
        `CI=${process.env.CI}, uid ${process.getuid?.()}: ${what} cannot run here, and CI must not skip it`,
      );
    });
  }
  return true;
}

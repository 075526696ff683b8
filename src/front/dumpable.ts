/**
 * aivaultd is not dumpable: prctl(PR_SET_DUMPABLE, 0) at start-up, so other processes of the same user can
 * neither ptrace it nor open its /proc/<pid>/mem, environ or maps (the kernel makes them root-owned); core
 * dumps are blocked too. Node has no prctl API and no maintained npm package wraps it, so this loads our
 * own two-function N-API addon (native/dumpable, built by `bash scripts/build-addon.sh dumpable`).
 *
 * On Linux a daemon without it refuses to start (main.ts): running dumpable would silently give same-user
 * code the request workers' memory, where secret values pass. Elsewhere it is reported as unsupported.
 * Only the aivaultd entry point calls this; `startDaemon` (the in-process API tests use) does not.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

interface DumpableAddon {
  disable(): void;
  isDumpable(): number;
}

export type DumpableResult = { ok: true } | { ok: false; reason: string };

/** Repo/package root: this file is two folders down in source mode (src/<folder>/), three when compiled (dist/…). */
const ROOT = new URL(import.meta.url.endsWith('.ts') ? '../../' : '../../../', import.meta.url);
export const DUMPABLE_ADDON = fileURLToPath(new URL('native/dumpable/build/Release/dumpable.node', ROOT));

export function disableDumpable(addonPath: string = DUMPABLE_ADDON): DumpableResult {
  if (process.platform !== 'linux') return { ok: false, reason: `not supported on ${process.platform}` };
  if (!existsSync(addonPath)) {
    return {
      ok: false,
      reason: `the prctl addon is not built (${addonPath}); run \`bash scripts/build-addon.sh dumpable\``,
    };
  }
  try {
    const addon = createRequire(import.meta.url)(addonPath) as DumpableAddon;
    addon.disable();
    return addon.isDumpable() === 0 ? { ok: true } : { ok: false, reason: 'PR_GET_DUMPABLE is still set' };
  } catch (err) {
    return { ok: false, reason: `the prctl addon failed: ${(err as Error).message}` };
  }
}

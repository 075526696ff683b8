/**
 * `aivault dashboard [--open]`: make sure aivaultd serves its loopback HTTP listener (like `aivault run`),
 * ask it over the operator channel (the unix socket; refused on a system-mode caller socket) for a
 * one-time login code, and print the login URL — valid once, for two minutes. With `--open` the URL is
 * also handed to xdg-open/open when there is one. The code is the only credential in the URL; after
 * login the browser holds an HttpOnly session cookie and the URL no longer works.
 */
import type { CliContext, CommandOptions, CommandResult } from '../context.js';
import { AivaultError } from '../../core/errors.js';
import { connectDaemon } from '../daemon-link.js';

function baseUrl(info: { host: string; port: number }): string {
  return `http://${info.host.includes(':') ? `[${info.host}]` : info.host}:${info.port}`;
}

/** The system's URL opener, if any (never a shell: the URL is one argument). */
async function openUrl(url: string): Promise<boolean> {
  const { spawn } = await import('node:child_process');
  const opener = process.platform === 'darwin' ? 'open' : 'xdg-open';
  return new Promise((resolve) => {
    const child = spawn(opener, [url], { stdio: 'ignore', detached: true });
    child.once('error', () => resolve(false));
    child.once('spawn', () => {
      child.unref();
      resolve(true);
    });
  });
}

export async function open(
  ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  // A passphrase vault: the operator proves it with the passphrase (the daemon checks it), as for a write.
  const { operatorPassphrase } = await import('../router.js');
  const passphrase = await operatorPassphrase(ctx, opts);
  const { ensureHttpListener } = await import('./run.js');
  const { http } = await ensureHttpListener(ctx, {
    ...(passphrase !== undefined
      ? { unlock: async () => (await import('./vault.js')).unlock(ctx, [], { passphrase }) }
      : {}),
  });
  const client = await connectDaemon(ctx.config, { autostart: false });
  let login: Record<string, string | number | boolean | null>;
  try {
    login = await client.dashboardLogin(passphrase);
  } finally {
    client.close();
  }
  if (typeof login.code !== 'string' || typeof login.expiresAt !== 'number') {
    throw new AivaultError('internal', 'aivaultd answered the dashboard login without a code');
  }
  const url = `${baseUrl(http)}/aivault/ui/login?code=${encodeURIComponent(login.code)}`;
  const opened = opts.open === true ? await openUrl(url) : false;
  const expiresAt = new Date(login.expiresAt).toISOString();
  return {
    json: { url, expiresAt, opened },
    human: (p) =>
      [
        `${p.bold('Dashboard login')} ${p.dim('(works once, until ' + expiresAt + ')')}`,
        `  ${url}`,
        ...(opts.open === true && !opened
          ? [p.yellow('  (no xdg-open here: open the URL in a browser yourself)')]
          : []),
      ].join('\n'),
  };
}

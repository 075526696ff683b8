/**
 * `aivault oauth setup`: builds the consent URL only. The authorization-code exchange deliberately happens
 * outside the broker; the resulting tokens are then stored with `aivault secrets create`.
 */
import { unwrap } from '../../core/errors.js';
import { buildConsentUrl } from '../../request-worker/auth/oauth-setup.js';
import type { CliContext, CommandOptions, CommandResult } from '../context.js';
import { optList, optString } from '../context.js';
import { renderFields } from '../output.js';

export async function setup(
  _ctx: CliContext,
  _pos: readonly string[],
  opts: CommandOptions,
): Promise<CommandResult> {
  const provider = optString(opts, 'provider') ?? '';
  const result = unwrap(
    buildConsentUrl({
      authUrl: optString(opts, 'authUrl') ?? '',
      clientId: optString(opts, 'clientId') ?? '',
      redirectUri: optString(opts, 'redirectUri') ?? '',
      scopes: optList(opts, 'scope'),
      ...(optString(opts, 'state') !== undefined ? { state: optString(opts, 'state') } : {}),
    }),
  );
  const json = { provider, ...result, codeChallengeMethod: 'S256' };
  return {
    json,
    human: (p) =>
      [
        renderFields(
          [
            ['provider', p.bold(provider)],
            ['consent url', result.consentUrl],
            ['state', result.state],
            ['code verifier', result.codeVerifier],
          ],
          p,
        ),
        '',
        p.dim('1. Open the consent URL and approve access.'),
        p.dim('2. Exchange the returned code (with the code verifier) for tokens outside aivault.'),
        p.dim(
          `3. Store them: aivault secrets create --name <PROVIDER_OAUTH> --value-stdin  (JSON {"clientId","clientSecret"?,"refreshToken"})`,
        ),
      ].join('\n'),
  };
}

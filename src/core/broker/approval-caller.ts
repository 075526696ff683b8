/**
 * Who a call's `once` approval is remembered for, and what it covered (issue 16). Pure: the request
 * worker builds these into the approval request, the daemon's main thread uses the same names when it
 * forgets approvals (a token revoked, a unix-socket connection closed).
 *
 * Callers: a proxy token is one caller (`token:<id>`). A unix-socket peer carries no token and aivaultd
 * cannot tell peers apart by credentials (uWebSockets.js gives no SO_PEERCRED), so each socket connection
 * is its own caller (`socket:<n>`): an approval covers later calls on that connection (an `aivault mcp`
 * session, a long-lived client) and ends with it; a one-shot `aivault invoke` is asked every time. That is
 * narrower than "the owner's uid", on purpose: two agents of the same user are two callers, and on a
 * group-shared or system-mode caller socket two users are never one. No caller → '' → never remembered.
 */
import { createHash } from 'node:crypto';
import type { EffectivePolicy, RequestContext } from './types.js';

export const tokenCaller = (tokenId: string): string => `token:${tokenId}`;
export const socketCaller = (connection: string): string => `socket:${connection}`;

/** The key a call's `once` approval is remembered under ('' when the caller cannot be told apart). */
export function approvalCaller(context: RequestContext): string {
  if (context.token) return context.token.id ? tokenCaller(context.token.id) : '';
  return context.socketConnection ? socketCaller(context.socketConnection) : '';
}

/**
 * What a `once` approval covered, beyond the capability: its effective policy, the credential and the
 * host the call goes to. A remembered approval is reused only while they are the same, so a change made
 * by any path (a hand edit of broker.json on an unsealed vault, a write racing a call) asks again.
 */
export function approvalScope(policy: EffectivePolicy, credentialId: string, host: string): string {
  return createHash('sha256')
    .update(JSON.stringify([policy, credentialId, host]))
    .digest('base64url')
    .slice(0, 22);
}

/** A caller as the operator reads it: `token <id>` or `socket #<connection>` (plain `socket`: unknown). */
export function callerLabel(callerTokenId: string, caller: string | undefined): string {
  if (callerTokenId) return `token ${callerTokenId}`;
  return caller?.startsWith('socket:') ? `socket #${caller.slice('socket:'.length)}` : 'socket';
}

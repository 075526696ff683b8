/**
 * Which operator writes make remembered `once` approvals stale (issue 16), on the daemon's main thread
 * where the ApprovalStore lives. An approval stood for "this caller may call this capability as it is
 * now": revoking the caller's token, setting the capability's policy (any `policy set`, the approval mode
 * included, even one that changes nothing) or removing the capability ends it, and the next call asks
 * again. Forgetting is always safe (it only makes a call ask), so a write whose reach is costly to work
 * out (a credential removed, maybe with its capabilities) forgets everything.
 *
 * The CLI's writes reach here as `command` frames (socket-server.ts, after the crypto worker ran them);
 * the operator HTTP API and the dashboard call the store directly. Changes made by no path at all (a hand
 * edit) are caught by the approval's scope instead (core/broker/approval-caller.ts).
 */
import type { CommandOptValue } from '../core/protocol/frames.js';
import { tokenCaller } from '../core/broker/approval-caller.js';
import type { ApprovalStore } from './approvals.js';

/** After operator command `key` succeeded: forget the `once` approvals it made stale. */
export function forgetAfterCommand(
  store: ApprovalStore,
  key: string,
  args: readonly string[],
  opts: Readonly<Record<string, CommandOptValue>>,
): void {
  switch (key) {
    case 'token.revoke':
      if (args[0] !== undefined) store.forgetCaller(tokenCaller(args[0]));
      return;
    case 'capability.policySet':
    case 'capability.remove': {
      // policy set takes the id as its argument or as --capability (capability.ts); a mismatch is refused.
      const id = args[0] ?? (typeof opts.capability === 'string' ? opts.capability : undefined);
      if (id !== undefined) store.forgetCapability(id);
      return;
    }
    case 'credential.remove':
      store.forgetAll();
      return;
  }
}

/** One pending-approval request as a request worker would send it (never a secret), for unit tests. */
import type { ApprovalRequest } from '../../../src/front/approvals.js';

export function approvalRequest(over: Partial<ApprovalRequest> = {}): ApprovalRequest {
  return {
    capability: 'acme/pay',
    method: 'POST',
    host: 'api.acme.test',
    path: '/v1/charges',
    bodyBytes: 42,
    callerTokenId: 'tok_a',
    caller: 'token:tok_a',
    scope: 'scope-1',
    transport: 'proxy',
    mode: 'always',
    ...over,
  };
}

/**
 * The common start of every route on the loopback HTTP listener (aivaultd main thread): abort tracking,
 * the framing rules against request smuggling (../http-strict.ts), and the loopback peer check (refusals
 * audited). Also used by the dashboard's routes (../dashboard/routes.ts).
 */
import { AivaultError } from '../../core/errors.js';
import type { AuditInput } from '../../stores/audit/audit-log.js';
import type { HttpRequest, HttpResponse } from '../uws.js';
import { isLoopbackPeer } from '../http-passthrough.js';
import { checkFraming } from '../http-strict.js';
import { statusLine, text, writeError, type ReqState } from './response.js';

/** Returns undefined when the request was refused (already answered). */
/** `headers`: every request header line as uWS gave it (lower-case names), read once per request. */
export type Begin = (
  res: HttpResponse,
  req: HttpRequest,
) => { st: ReqState; peer: string; headers: [string, string][] } | undefined;

/**
 * Every route starts here: abort tracking, framing rules (http-strict.ts), the peer check. The returned
 * function must run synchronously in the route handler (it reads `req`). `responses` holds every open
 * response (closed at shutdown).
 */
export function createBegin(deps: {
  readonly responses: Set<HttpResponse>;
  readonly allowRemote: boolean;
  readonly audit: (event: AuditInput) => void;
}): Begin {
  const { responses, audit } = deps;

  return (res, req) => {
    const st: ReqState = { aborted: false, finished: false };
    responses.add(res);
    res.onAborted(() => {
      st.aborted = true;
      responses.delete(res);
      st.onAbort?.();
    });
    const lines: [string, string][] = [];
    req.forEach((name, value) => lines.push([name, value]));
    const framing = checkFraming(lines);
    if (framing) {
      // Not end(): uWS would go on to dispatch a request smuggled after this one in the same read. With
      // this response still open, uWS drops the connection if anything follows; otherwise the status and
      // message go out and the connection is closed on the next turn.
      st.finished = true;
      res
        .writeStatus(statusLine(framing.status))
        .writeHeader('content-type', 'application/json')
        .writeHeader('connection', 'close')
        .write(JSON.stringify({ error: 'invalid_request', message: framing.message }));
      setImmediate(() => {
        if (!st.aborted) res.close();
      });
      return undefined;
    }
    const peer = text(res.getRemoteAddressAsText());
    if (!deps.allowRemote && !isLoopbackPeer(peer)) {
      writeError(
        res,
        st,
        new AivaultError(
          'policy_violation',
          'non-loopback clients are refused (aivaultd --http-allow-remote)',
        ),
      );
      audit({
        kind: 'http.refused',
        clientIp: peer,
        errorCode: 'policy_violation',
        note: 'non-loopback peer',
      });
      return undefined;
    }
    return { st, peer, headers: lines };
  };
}

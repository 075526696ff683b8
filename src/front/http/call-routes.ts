/**
 * The call routes of the loopback HTTP listener (aivaultd main thread): `POST /aivault/proxy` (a JSON
 * envelope) and `ANY /v/{credential}/…` (passthrough for unchanged SDKs). This thread checks the proxy
 * token and moves bytes: the body is transferred to the request worker, which parses the envelope, picks
 * the passthrough capability and makes every policy decision; the answer streams back through the shared
 * relay (../relay.ts) with credit-based backpressure, for as long as the token stays valid.
 */
import { AivaultError, fromWire } from '../../core/errors.js';
import type { AuditInput } from '../../stores/audit/audit-log.js';
import type { ProxyTokenRecord } from '../../stores/tokens/tokens.js';
import type { CallRequest } from '../../core/threads/call-port.js';
import type { HttpResponse, TemplatedApp } from '../uws.js';
import { extractToken, splitPassthroughPath } from '../http-passthrough.js';
import { startRelayedCall, type CallRelay, type RelaySink } from '../relay.js';
import type { ListenerContext } from './context.js';
import { tokenContext, type OpenStream, type TokenRecheck } from './proxy-tokens.js';
import { readBody, writeError, writeHead, type ReqState } from './response.js';

/** Request headers a passthrough call forwards: the token headers are consumed, transport headers dropped. */
export const PASSTHROUGH_DROP: ReadonlySet<string> = new Set([
  'authorization',
  'x-api-key',
  'x-goog-api-key',
  'host',
  'connection',
  'keep-alive',
  'content-length',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
  'expect',
  'proxy-connection',
  'cookie',
]);

/** Mount `POST /aivault/proxy` and `ANY /v/*`. `responses` holds every open response (closed at shutdown). */
export function mountCallRoutes(
  app: TemplatedApp,
  ctx: ListenerContext,
  responses: Set<HttpResponse>,
  recheck: TokenRecheck,
): void {
  const { pool, verifier, audit, begin } = ctx;
  const { track, untrack } = recheck;

  /**
   * Run one invocation and stream its answer into `res` with credit-based backpressure (relay.ts). The
   * call stays registered with the token re-check (proxy-tokens.ts) until it ends, so the re-check can
   * end it when the token dies.
   */
  const relayCall = (
    res: HttpResponse,
    st: ReqState,
    call: CallRequest,
    token: ProxyTokenRecord,
    peer: string,
    route: string,
  ): void => {
    const tracked: { entry?: OpenStream } = {};
    const live = (): boolean => !st.aborted && !st.finished;
    // uWS reports backpressure as write()'s result; the relay asks right after each chunk.
    let writable = true;
    let waiting = false;
    const transport = route === '/v/' ? 'passthrough' : 'proxy';
    const sink: RelaySink = {
      head: (status, headers, timing) => live() && res.cork(() => writeHead(res, status, headers, timing)),
      chunk: (data) => live() && res.cork(() => (writable = res.write(data))),
      // uWS writes the bytes or copies them into its own buffer before write() returns.
      chunkBytesFreed: 'now',
      end: () => live() && res.cork(() => res.end()),
      together: (writes) => {
        if (live()) res.cork(writes);
      },
      full: (status, headers, body, _scrubbed, timing) =>
        live() &&
        res.cork(() => {
          writeHead(res, status, headers, timing);
          res.end(body);
        }),
      error: (error, headSent) => {
        if (!live()) return;
        if (!headSent) writeError(res, st, fromWire(error));
        else res.close(); // mid-stream failure: the client sees a truncated body
      },
      finished: () => {
        st.finished = true;
        responses.delete(res);
        if (tracked.entry) untrack(tracked.entry);
      },
    };
    let relay: CallRelay;
    try {
      relay = startRelayedCall(
        pool,
        { ...call, context: tokenContext(token, peer), stream: true, transport },
        sink,
        () => writable,
        () => {
          if (waiting) return;
          waiting = true;
          res.onWritable(() => {
            waiting = false;
            writable = true;
            relay.drained();
            return true;
          });
        },
      );
    } catch (err) {
      const code = writeError(res, st, err);
      ctx.metrics?.writer.refusal(transport, code);
      return;
    }
    const entry: OpenStream = {
      token,
      route,
      peer,
      revoke: () => {
        if (!live()) return;
        if (!relay.answered) {
          writeError(res, st, new AivaultError('token_invalid', 'proxy token expired or was revoked'));
        } else res.close(); // mid-stream: the client sees a cut connection, never a clean end
        relay.stop();
      },
    };
    tracked.entry = entry;
    if (!st.finished) track(entry);
    st.onAbort = () => relay.stop();
  };

  const verifyProxy = async (
    res: HttpResponse,
    st: ReqState,
    peer: string,
    token: string | undefined,
    route: string,
  ) => {
    try {
      return await verifier.verifyProxy(token);
    } catch (err) {
      const code = writeError(res, st, err);
      audit({ kind: 'http.denied', path: route, clientIp: peer || undefined, errorCode: code } as AuditInput);
      ctx.metrics?.writer.refusal(route === '/v/' ? 'passthrough' : 'proxy', code);
      return undefined;
    }
  };

  app.post('/aivault/proxy', (res, req) => {
    const b = begin(res, req);
    if (!b) return;
    const { st, peer } = b;
    const token = extractToken({ authorization: req.getHeader('authorization') }, false);
    // Verify while the body streams in: a bad token is answered at once and the rest of the body dropped.
    const verified = verifyProxy(res, st, peer, token, '/aivault/proxy');
    readBody(res, st, req.getHeader('content-length'), (body) => {
      void verified.then((rec) => {
        if (!rec || st.aborted) return;
        // The worker parses the envelope: this thread only moves its bytes.
        relayCall(res, st, { envelopeJson: body.buffer }, rec, peer, '/aivault/proxy');
      });
    });
  });

  app.any('/v/*', (res, req) => {
    const b = begin(res, req);
    if (!b) return;
    const { st, peer } = b;
    const method = req.getCaseSensitiveMethod().toUpperCase();
    const url = req.getUrl();
    const query = req.getQuery() ?? '';
    const token = extractToken(
      {
        authorization: req.getHeader('authorization'),
        'x-api-key': req.getHeader('x-api-key'),
        'x-goog-api-key': req.getHeader('x-goog-api-key'),
      },
      true,
    );
    // The lines begin() read for the framing check (one req.forEach per request, not two).
    const headers = b.headers.filter(([name]) => !PASSTHROUGH_DROP.has(name));
    const split = splitPassthroughPath(url);
    const hasBody = method !== 'GET' && method !== 'HEAD';
    const verified = verifyProxy(res, st, peer, token, '/v/');
    const proceed = (body: Uint8Array<ArrayBuffer> | undefined): void => {
      void verified.then((rec) => {
        if (!rec || st.aborted) return;
        if (!split) {
          writeError(
            res,
            st,
            new AivaultError('invalid_request', 'passthrough paths look like /v/{credential}/…'),
          );
          return;
        }
        // The request worker matches the capability (and audits a miss): no catalog work here.
        const passthrough = { credential: split.credential, method, path: split.rest, query, headers };
        const call: CallRequest =
          body && body.byteLength > 0 ? { passthrough, body: body.buffer } : { passthrough };
        relayCall(res, st, call, rec, peer, '/v/');
      });
    };
    if (hasBody) readBody(res, st, req.getHeader('content-length'), proceed);
    else proceed(undefined);
  });
}

/**
 * What a proxy token (`avp_…`) means for a call on the loopback HTTP listener (aivaultd main thread): the
 * request context it grants the request worker, and the re-check that keeps it authorising an open HTTP
 * stream or /aivault/ws relay only while it is valid — expiry or revocation ends them (a 401 or a cut
 * connection for a stream, close 1008 for a relay). Hashes only: no token value is kept here.
 */
import type { RequestContext } from '../../core/broker/types.js';
import type { AuditInput } from '../../stores/audit/audit-log.js';
import type { ProxyTokenRecord, TokenVerifier } from '../../stores/tokens/tokens.js';
import type { WebSocket } from '../uws.js';

/**
 * How often open /aivault/ws relays and open HTTP streams (/aivault/proxy, /v/…, SSE included) re-check
 * that their proxy token is still valid (not expired/revoked).
 */
export const WS_TOKEN_RECHECK_MS = 1000;

/** An HTTP call in flight, authorised by its proxy token for as long as it runs (like a relay). */
export interface OpenStream {
  readonly token: ProxyTokenRecord;
  readonly route: string;
  readonly peer: string;
  /** Abort the call and end the response (401 before the head, a cut connection after it). */
  revoke(): void;
}

/** The part of a relay's socket data the re-check reads (ws-relay.ts `WsData`). */
export interface RelayTokenState {
  readonly peer: string;
  /** The proxy token the upgrade was verified with; re-checked for as long as the socket is open. */
  readonly token: ProxyTokenRecord | undefined;
  open: boolean;
}

/**
 * The context last built per token record, for its peer. Records are immutable and replaced when
 * tokens.json changes, so a cached context can never outlive its record's content; the object is only
 * read (it is cloned into the call message), so calls may share it. Why: three conditional spreads per call
 * on the main thread (~2% of its time on `/v/`, issue 12).
 */
const contexts = new WeakMap<ProxyTokenRecord, { readonly peer: string; readonly ctx: RequestContext }>();

export function tokenContext(token: ProxyTokenRecord, peer: string): RequestContext {
  const hit = contexts.get(token);
  if (hit?.peer === peer) return hit.ctx;
  const ctx = buildContext(token, peer);
  contexts.set(token, { peer, ctx });
  return ctx;
}

function buildContext(token: ProxyTokenRecord, peer: string): RequestContext {
  return {
    ...(peer ? { clientIp: peer } : {}),
    ...(token.workspaceId !== undefined ? { workspaceId: token.workspaceId } : {}),
    ...(token.groupId !== undefined ? { groupId: token.groupId } : {}),
    token: {
      id: token.id,
      capabilities: token.capabilities,
      ...(token.credential !== undefined ? { credential: token.credential } : {}),
    },
  };
}

export interface TokenRecheck {
  /** Register an HTTP stream for as long as it runs. */
  track(s: OpenStream): void;
  untrack(s: OpenStream): void;
  /** A relay opened (it is in `sockets`): make sure the timer runs. */
  relayOpened(): void;
  /** A relay closed (already removed from `sockets`): stop the timer when nothing is left to watch. */
  relayClosed(): void;
  /** Stop the timer (shutdown). */
  stop(): void;
  /** Forget every stream (shutdown: their responses are being closed). */
  forgetStreams(): void;
}

/** The timer runs only while a stream or a relay is open. */
export function createTokenRecheck(deps: {
  readonly verifier: TokenVerifier;
  readonly audit: (event: AuditInput) => void;
  readonly intervalMs: number;
  /** The open /aivault/ws relays (owned by the listener). */
  readonly sockets: ReadonlySet<WebSocket<RelayTokenState>>;
}): TokenRecheck {
  const { verifier, audit, sockets, intervalMs } = deps;
  const streams = new Set<OpenStream>();
  let recheckTimer: ReturnType<typeof setInterval> | undefined;
  let rechecking = false;
  const startRecheck = (): void => {
    recheckTimer ??= setInterval(() => void recheckTokens(), intervalMs).unref();
  };
  const stopRecheck = (): void => {
    if (recheckTimer) clearInterval(recheckTimer);
    recheckTimer = undefined;
  };
  function track(s: OpenStream): void {
    streams.add(s);
    startRecheck();
  }
  function untrack(s: OpenStream): void {
    streams.delete(s);
    if (sockets.size === 0 && streams.size === 0) stopRecheck();
  }
  /**
   * A relay or an HTTP stream is authorised by its token for as long as it is open, not just when it
   * starts: end every one whose token expired or was revoked (tokens.json is re-read only when it
   * changed). A token file that cannot be read ends them too (fail closed), as it refuses new calls.
   */
  const recheckTokens = async (): Promise<void> => {
    if (rechecking || (sockets.size === 0 && streams.size === 0)) return;
    rechecking = true;
    try {
      const active = await verifier.activeProxyTokenIds().catch(() => new Set<string>());
      const now = Date.now();
      for (const s of [...streams]) {
        if (active.has(s.token.id) && s.token.expiresAtMs > now) continue;
        audit({
          kind: 'http.denied',
          path: s.route,
          errorCode: 'token_invalid',
          note: 'stream closed: token expired or revoked',
          ...(s.peer ? { clientIp: s.peer } : {}),
        });
        s.revoke();
      }
      for (const ws of [...sockets]) {
        const d = ws.getUserData();
        if (!d.open) continue;
        if (d.token && active.has(d.token.id) && d.token.expiresAtMs > now) continue;
        d.open = false;
        audit({
          kind: 'http.denied',
          path: '/aivault/ws',
          errorCode: 'token_invalid',
          note: 'relay closed: token expired or revoked',
          ...(d.peer ? { clientIp: d.peer } : {}),
        });
        ws.end(1008, 'token_invalid');
      }
    } finally {
      rechecking = false;
    }
  };
  return {
    track,
    untrack,
    relayOpened: startRecheck,
    relayClosed: () => {
      if (sockets.size === 0 && streams.size === 0) stopRecheck();
    },
    stop: stopRecheck,
    forgetStreams: () => streams.clear(),
  };
}

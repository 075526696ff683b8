/**
 * Request-worker side of `GET /aivault/ws`: authorize the connect frame through the same path as every
 * HTTP call (src/request-worker/pipeline/authorize.ts: plan with the upgrade checked as a GET on `path`, rate limit, secrets,
 * auth), open the upstream `wss://` connection (host + port from
 * policy, SSRF guard at connect time, dev overrides only for verified dev vaults) and relay frames with
 * the credit/ack backpressure described in http-ws-protocol.ts. Exactly one audit event per relay.
 * Secret values live only in this worker (auth headers handed to the ws client; errors and upstream
 * messages are scrubbed of them); they are never posted to the main thread.
 */
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import WebSocket from 'ws';
import { AivaultError, toWire } from '../core/errors.js';
import type { AuditInput } from '../stores/audit/audit-log.js';
import type { Envelope, Plan } from '../core/broker/types.js';
import type { HeaderPair } from './auth/strategy.js';
import { auditScrubbed } from './pipeline/invoke.js';
import { admit, prepareUpstreamRequest, secretSlots, type AuditDraft } from './pipeline/authorize.js';
import type { AskApproval, PipelineDeps } from './pipeline/types.js';
import type { ApprovalOutcome } from '../front/approvals.js';
import { newScrubStats, type ScrubMatcher } from './pipeline/scrub.js';
import { scrubCallError, scrubSecretsOf } from './pipeline/scrub-call.js';
import { scrubberFor } from './pipeline/scrubber-cache.js';
import { createGuardedLookup, mapUpstreamError } from './pipeline/upstream.js';
import {
  sendableCloseCode,
  WS_INITIAL_CREDITS,
  type WsMainToWorker,
  type WsTask,
  type WsWorkerToMain,
} from '../core/threads/ws-protocol.js';

const MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

function own(data: Uint8Array): ArrayBuffer {
  const copy = new Uint8Array(data.byteLength);
  copy.set(data);
  return copy.buffer;
}

function toBuffer(data: WebSocket.RawData): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return data;
}

/** Close code + reason the client gets when the upstream breaks the WebSocket protocol (ws `WS_ERR_*`). */
export function upstreamProtocolClose(err: unknown): { code: number; reason: string } | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  if (typeof code !== 'string' || !code.startsWith('WS_ERR_')) return undefined;
  if (code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') return { code: 1009, reason: 'upstream message too big' };
  if (code === 'WS_ERR_INVALID_UTF8') return { code: 1007, reason: 'upstream sent invalid UTF-8' };
  return { code: 1002, reason: 'upstream protocol error' };
}

/**
 * Run one relay. `ready` settles when this worker has its crypto port; the port listener is attached
 * BEFORE waiting for it, so client frames that arrive meanwhile are not lost.
 */
export async function runWsRelay(deps: PipelineDeps, task: WsTask, ready: Promise<unknown>): Promise<void> {
  const { port, connect, context } = task;
  const started = Date.now();
  let terminalSent = false;
  const post = (msg: WsWorkerToMain, transfer: ArrayBuffer[] = []): void => {
    if (terminalSent) return;
    if (msg.t === 'ws-close' || msg.t === 'error') terminalSent = true;
    port.postMessage(msg, transfer);
  };
  const audit: AuditDraft = {
    kind: 'ws',
    capability: connect.capability,
    method: 'GET',
    ...(context.workspaceId ? { workspaceId: context.workspaceId } : {}),
    ...(context.groupId ? { groupId: context.groupId } : {}),
    ...(context.clientIp ? { clientIp: context.clientIp } : {}),
  };
  let upstream: WebSocket | undefined;
  let credits = WS_INITIAL_CREDITS;
  let paused = false;
  let clientClosed: { code: number; reason: string } | undefined;
  let aborted = false;
  /** Client frames that arrived before the upstream opened. */
  const pending: { data: Buffer; binary: boolean }[] = [];
  /** Upstream → client messages, close reasons and errors are scrubbed of this relay's secret values. */
  let scrubber: ScrubMatcher | undefined;
  let plan: Plan | undefined;
  const slotsSeen: Readonly<Record<string, string>>[] = [];
  let urlSecrets: readonly string[] = [];
  let authHeaders: readonly HeaderPair[] = [];
  const scrubStats = newScrubStats();
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));

  const sendUp = (data: Buffer, binary: boolean): void => {
    const ws = upstream;
    if (!ws || ws.readyState !== WebSocket.OPEN) {
      pending.push({ data, binary });
      return;
    }
    ws.send(data, { binary }, () => post({ t: 'ws-ack', bytes: data.byteLength }));
  };

  /** Set while the relay waits for the operator's answer (capability policy `approval`). */
  let approved: ((outcome: ApprovalOutcome) => void) | undefined;
  let abortWait: (() => void) | undefined;
  const askApproval: AskApproval = (request) =>
    new Promise<ApprovalOutcome>((resolve, reject) => {
      if (aborted) return reject(new AivaultError('upstream_unreachable', 'relay cancelled'));
      approved = resolve;
      abortWait = () => reject(new AivaultError('upstream_unreachable', 'relay cancelled'));
      post({ t: 'approval', request: { ...request, transport: 'ws' } });
    });

  port.on('message', (msg: WsMainToWorker) => {
    switch (msg.t) {
      case 'approval':
        approved?.(msg.outcome);
        approved = undefined;
        abortWait = undefined;
        return;
      case 'ws-send':
        sendUp(Buffer.from(msg.data), msg.binary);
        return;
      case 'credit':
        credits += msg.n;
        if (paused && credits > 0 && upstream) {
          paused = false;
          upstream.resume();
        }
        return;
      case 'ws-close':
        clientClosed = { code: msg.code, reason: msg.reason };
        if (upstream && upstream.readyState === WebSocket.OPEN) {
          upstream.close(sendableCloseCode(msg.code), msg.reason.slice(0, 120));
          // A peer that never answers the close handshake does not keep the relay alive.
          setTimeout(() => upstream?.terminate(), 5000).unref();
        }
        return;
      case 'abort':
        aborted = true;
        abortWait?.();
        upstream?.terminate();
        resolveDone();
        return;
      default:
        return;
    }
  });

  try {
    await ready;
    const dev = await deps.secrets.devOverrides();
    const envelope: Envelope = {
      capability: connect.capability,
      ...(connect.credential !== undefined ? { credential: connect.credential } : {}),
      // The upgrade is a GET for method enforcement; the path is policed like any HTTP path.
      request: {
        method: 'GET',
        path: connect.path,
        ...(connect.headers ? { headers: connect.headers } : {}),
      },
    };
    const planned = await admit(deps, envelope, context, dev, audit, askApproval);
    plan = planned;
    const slots = await secretSlots(deps, planned, dev, slotsSeen);
    // No body: an upgrade is a bodiless GET, signed as such.
    const req = await prepareUpstreamRequest(deps, planned, slots, {
      headers: planned.headers,
      body: new Uint8Array(0),
    });
    urlSecrets = req.urlSecrets;
    authHeaders = req.authHeaders;
    scrubber = scrubberFor(scrubSecretsOf(planned, slotsSeen, authHeaders));
    const scrub = scrubber;
    const headers: Record<string, string> = Object.fromEntries(req.headers);
    const mapped = dev?.resolve.get(planned.host.toLowerCase());
    const dialPort = mapped ? mapped.port : planned.port;
    const url = `wss://${planned.host}${dialPort === 443 ? '' : `:${dialPort}`}${req.pathAndQuery}`;
    // Same trust as the HTTP transport (request-worker/pipeline/upstream.ts): default roots (+ the dev CA on a verified
    // dev vault) plus the credential's own mTLS CA.
    const cert = req.clientCert;
    let ca: string[] | undefined;
    if (dev?.caCertPath) ca = [...rootCertificates, readFileSync(dev.caCertPath, 'utf8')];
    if (cert?.ca !== undefined) ca = [...(ca ?? rootCertificates), cert.ca];

    const ws = new WebSocket(url, connect.protocols ? [...connect.protocols] : [], {
      headers,
      perMessageDeflate: false,
      followRedirects: false,
      handshakeTimeout: 10_000,
      maxPayload: MAX_MESSAGE_BYTES,
      lookup: createGuardedLookup(dev) as never,
      ...(ca ? { ca } : {}),
      ...(cert ? { cert: cert.cert, key: cert.key } : {}),
    });
    upstream = ws;
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => {
        const status = res.statusCode ?? 0;
        res.resume();
        ws.terminate();
        audit.status = status;
        reject(
          new AivaultError(
            'upstream_unreachable',
            `upstream ${planned.host} refused the WebSocket upgrade (${status})`,
            {
              status,
            },
          ),
        );
      });
      ws.once('error', (err) => reject(mapUpstreamError(err, planned.host)));
    });
    if (aborted) {
      ws.terminate();
      return;
    }
    audit.status = 101;
    post({ t: 'ws-open', protocol: ws.protocol });
    for (const p of pending.splice(0)) sendUp(p.data, p.binary);
    if (clientClosed) ws.close(sendableCloseCode(clientClosed.code), clientClosed.reason.slice(0, 120));

    ws.on('message', (data, isBinary) => {
      // A message is whole here, so it is scrubbed at once (no state across messages).
      const buf = own(scrub.scrub(toBuffer(data), scrubStats));
      post({ t: 'ws-msg', data: buf, binary: isBinary }, [buf]);
      credits--;
      if (credits <= 0 && !paused) {
        paused = true;
        ws.pause();
      }
    });
    ws.on('error', (err) => {
      // A protocol error from the upstream (a message over MAX_MESSAGE_BYTES, invalid UTF-8, a bad
      // frame): ws starts a close handshake and waits up to 30 s for the answer. Tell the client at once
      // with the matching code and drop the upstream. Other errors: 'close' follows (1006 → 1011).
      const close = upstreamProtocolClose(err);
      if (!close) return;
      post({ t: 'ws-close', ...close });
      ws.terminate();
      resolveDone();
    });
    ws.on('close', (code, reason) => {
      const text = scrub.scrubText(reason.toString('utf8'), scrubStats);
      post({ t: 'ws-close', code, reason: text.slice(0, 120) });
      resolveDone();
    });
    await done;
  } catch (err) {
    const raw = err instanceof AivaultError ? err : mapUpstreamError(err, audit.host ?? 'upstream');
    audit.errorCode = raw.code;
    upstream?.terminate();
    const e = scrubCallError(raw, { plan, slotsSeen, urlSecrets, authHeaders, scrubber });
    post({ t: 'error', error: toWire(e) });
  } finally {
    audit.durationMs = Date.now() - started;
    await deps.audit(audit as AuditInput).catch((err: unknown) => deps.onAuditError?.(err));
    if (scrubStats.count > 0) await auditScrubbed(deps, audit, scrubStats);
    post({ t: 'ws-close', code: 1006, reason: '' });
    port.close();
  }
}

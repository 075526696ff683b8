/**
 * Answers on the loopback HTTP listener (aivaultd main thread): the per-request state every route keeps,
 * JSON and error answers (stable codes from core/errors.ts, with their HTTP status), a relayed call's head
 * with our Server-Timing in place of the upstream's, the /metrics text answer, and reading a bounded
 * request body into one buffer a call can transfer to its worker.
 */
import { STATUS_CODES } from 'node:http';
import { AivaultError, ERRORS, toWire, type ErrorCode } from '../../core/errors.js';
import type { HeaderList } from '../../core/broker/types.js';
import { formatServerTiming, type Timings } from '../../core/threads/server-timing.js';
import type { HttpResponse } from '../uws.js';

/** Largest request body the listener accepts (the same bound as a unix-socket frame). */
export const MAX_HTTP_BODY_BYTES = 64 * 1024 * 1024;

/** One request's state: uWS forbids touching a response after it was aborted or ended. */
export interface ReqState {
  aborted: boolean;
  finished: boolean;
  onAbort?: () => void;
}

export function statusLine(status: number): string {
  return `${status} ${STATUS_CODES[status] ?? 'Status'}`;
}

export const text = (ab: ArrayBuffer): string => Buffer.from(ab).toString('utf8');

export function writeJson(res: HttpResponse, st: ReqState, status: number, value: unknown): void {
  if (st.aborted || st.finished) return;
  st.finished = true;
  res.cork(() => {
    res
      .writeStatus(statusLine(status))
      .writeHeader('content-type', 'application/json')
      .writeHeader('cache-control', 'no-store')
      .end(JSON.stringify(value));
  });
}

/** A /metrics answer (Prometheus text format). */
export function writeMetrics(res: HttpResponse, st: ReqState, contentType: string, body: string): void {
  if (st.aborted || st.finished) return;
  st.finished = true;
  res.cork(() => {
    res
      .writeStatus('200 OK')
      .writeHeader('content-type', contentType)
      .writeHeader('cache-control', 'no-store')
      .end(body);
  });
}

export function writeError(res: HttpResponse, st: ReqState, err: unknown): ErrorCode {
  const wire = toWire(err);
  writeJson(res, st, ERRORS[wire.error].http, wire);
  return wire.error;
}

/** The head of a relayed upstream answer (call inside res.cork). */
export function writeHead(res: HttpResponse, status: number, headers: HeaderList, timing?: Timings): void {
  res.writeStatus(statusLine(status));
  for (const [n, v] of headers) {
    // The upstream's own Server-Timing is replaced by ours (where the time went in aivault).
    if (n === 'date' || n === 'content-length' || n === 'transfer-encoding' || n === 'server-timing')
      continue;
    res.writeHeader(n, v);
  }
  if (timing) res.writeHeader('server-timing', formatServerTiming(timing));
}

/**
 * Read the whole request body (bounded) into one owned buffer, which a call then transfers to its worker
 * (never a pooled Buffer: transferring would detach the pool). Must be called synchronously inside the
 * route handler.
 */
export function readBody(
  res: HttpResponse,
  st: ReqState,
  contentLength: string,
  cb: (body: Uint8Array<ArrayBuffer>) => void,
): void {
  if (contentLength && Number(contentLength) > MAX_HTTP_BODY_BYTES) {
    writeError(
      res,
      st,
      new AivaultError('body_too_large', `request body exceeds ${MAX_HTTP_BODY_BYTES} bytes`),
    );
    return;
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  let failed = false;
  res.onData((ab, isLast) => {
    if (failed || st.finished || st.aborted) return;
    total += ab.byteLength;
    if (total > MAX_HTTP_BODY_BYTES) {
      failed = true;
      writeError(
        res,
        st,
        new AivaultError('body_too_large', `request body exceeds ${MAX_HTTP_BODY_BYTES} bytes`),
      );
      return;
    }
    // uWS neuters the chunk after this callback: copy it (the copy of a one-piece body is the body).
    const piece = new Uint8Array(ab).slice();
    if (!isLast) {
      chunks.push(piece);
      return;
    }
    if (st.aborted) return;
    if (chunks.length === 0) return cb(piece);
    const body = new Uint8Array(total);
    let at = 0;
    for (const c of [...chunks, piece]) {
      body.set(c, at);
      at += c.byteLength;
    }
    cb(body);
  });
}

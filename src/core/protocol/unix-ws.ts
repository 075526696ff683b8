/**
 * A minimal WebSocket client (RFC 6455) over a unix socket, for the aivaultd client (CLI, bench, tests).
 * Runs on whichever thread opens it (the CLI's main thread, mostly).
 *
 * Why our own and not `ws`: loading `ws` pulls node:http (and with it node:https/tls/zlib stand-ins,
 * the http parser and the agent machinery) into every `aivault invoke`; that was the largest remaining
 * share of its start-up (issue 12: target 1.3× `node -e 0`). The daemon's front (uWS) is the only peer:
 * this client speaks exactly what the protocol uses — one upgrade request, binary and text messages
 * (fragmented or not), ping → pong, close — and nothing else (no extensions, no subprotocols).
 *
 * Masking: RFC 6455 requires client frames to be masked; the key exists so that an intermediary cache
 * cannot be poisoned by attacker-chosen bytes. A unix socket to the daemon has no intermediary, so every
 * frame uses the all-zero key (valid: the server XORs with the key it is given), which makes masking
 * a no-op and lets bodies go out without a copy. For the same reason the handshake nonce comes from
 * Math.random and the answer is checked for `101` and the presence of Sec-WebSocket-Accept, not its SHA-1:
 * both exist to keep HTTP caches and proxies from mistaking the exchange; node:crypto (with node:stream)
 * was ~8% of `node -e 0` per CLI call for nothing. Who listens on the socket is checked elsewhere
 * (socket-identity.ts, the run dir's modes).
 */
import { createConnection, type Socket } from 'node:net';
const OP_CONT = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;
/** After our close frame, how long the server may take to end the connection. */
const CLOSE_TIMEOUT_MS = 2000;

export interface UnixWsOptions {
  readonly socketPath: string;
  /** Largest message accepted from the server (bytes); a larger one closes with 1009. */
  readonly maxPayload: number;
  /** Connect + upgrade must finish within this (ms). */
  readonly handshakeTimeoutMs: number;
}

export interface UnixWsHandlers {
  message(data: Buffer, isBinary: boolean): void;
  /** Once, when the connection is gone: the close code received (1006 when none was). */
  close(code: number): void;
}

export interface UnixWs {
  /** Send one binary message. */
  send(data: Uint8Array): void;
  pause(): void;
  resume(): void;
  /** Send a normal close and end the connection. */
  close(): void;
}

/** The frame header for a client → server frame of `len` payload bytes (masked with the zero key). */
function header(opcode: number, len: number): Buffer {
  if (len < 126) return Buffer.from([0x80 | opcode, 0x80 | len, 0, 0, 0, 0]);
  if (len < 0x10000) {
    const h = Buffer.alloc(8);
    h[0] = 0x80 | opcode;
    h[1] = 0x80 | 126;
    h.writeUInt16BE(len, 2);
    return h;
  }
  const h = Buffer.alloc(14);
  h[0] = 0x80 | opcode;
  h[1] = 0x80 | 127;
  h.writeUInt32BE(Math.floor(len / 0x1_0000_0000), 2);
  h.writeUInt32BE(len >>> 0, 6);
  return h;
}

function failure(message: string, code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

/** Connect and upgrade. Rejects with the socket's error (ENOENT, ECONNREFUSED…) or a handshake error. */
export function openUnixWs(opts: UnixWsOptions, handlers: UnixWsHandlers): Promise<UnixWs> {
  return new Promise<UnixWs>((resolve, reject) => {
    const nonce = Buffer.allocUnsafe(16);
    for (let i = 0; i < 16; i++) nonce[i] = Math.floor(Math.random() * 256);
    const key = nonce.toString('base64');
    const socket: Socket = createConnection({ path: opts.socketPath });
    let open = false;
    let closed = false;
    let closeCode = 1006;
    let sentClose = false;
    const timer = setTimeout(() => {
      socket.destroy(failure('WebSocket handshake timed out', 'ETIMEDOUT'));
    }, opts.handshakeTimeoutMs);

    // Received bytes not yet parsed, as a list (a large message arrives in many chunks: concatenated
    // once when complete, never per chunk).
    let chunks: Buffer[] = [];
    let have = 0;
    let fragments: Buffer[] = [];
    let fragmentBytes = 0;
    let fragmentOp = 0;

    const take = (n: number): Buffer => {
      const first = chunks[0] as Buffer;
      let out: Buffer;
      if (first.length >= n) {
        out = first.subarray(0, n);
        if (first.length === n) chunks.shift();
        else chunks[0] = first.subarray(n);
      } else {
        out = Buffer.allocUnsafe(n);
        let off = 0;
        while (off < n) {
          const c = chunks[0] as Buffer;
          const k = Math.min(c.length, n - off);
          c.copy(out, off, 0, k);
          off += k;
          if (k === c.length) chunks.shift();
          else chunks[0] = c.subarray(k);
        }
      }
      have -= n;
      return out;
    };
    /** At least the first n (≤ 14, ≤ have) buffered bytes, without consuming them. */
    const peek = (n: number): Buffer => {
      const first = chunks[0] as Buffer;
      return first.length >= n ? first : Buffer.concat(chunks, Math.min(have, 14));
    };

    const write = (opcode: number, payload: Uint8Array): void => {
      // Nothing after our close frame (RFC 6455 §5.5.1), and nothing on a socket that is gone.
      if (closed || sentClose || socket.destroyed) return;
      socket.cork();
      socket.write(header(opcode, payload.byteLength));
      if (payload.byteLength > 0) socket.write(payload);
      socket.uncork();
    };
    const sendClose = (code: number): void => {
      if (sentClose) return;
      const p = Buffer.alloc(2);
      p.writeUInt16BE(code, 0);
      write(OP_CLOSE, p);
      sentClose = true;
      socket.end();
      // The server answers a close and ends the connection; one that does not is not waited for long.
      setTimeout(() => socket.destroy(), CLOSE_TIMEOUT_MS).unref();
    };
    const protocolError = (code: number): void => {
      closeCode = code;
      sendClose(code);
      socket.destroySoon();
    };

    /** Parse every complete frame in the buffer. */
    const parseFrames = (): void => {
      while (have >= 2 && !closed && !sentClose) {
        const h = peek(2);
        const b0 = h[0] as number;
        const b1 = h[1] as number;
        const masked = (b1 & 0x80) !== 0;
        let len = b1 & 0x7f;
        let hl = 2;
        if (len === 126) hl = 4;
        else if (len === 127) hl = 10;
        if (masked) hl += 4;
        if (have < hl) return;
        const hdr = peek(hl);
        if (len === 126) len = hdr.readUInt16BE(2);
        else if (len === 127) len = hdr.readUInt32BE(2) * 0x1_0000_0000 + hdr.readUInt32BE(6);
        const opcode = b0 & 0x0f;
        const fin = (b0 & 0x80) !== 0;
        if ((b0 & 0x70) !== 0) return protocolError(1002); // no extension was negotiated
        if (len > opts.maxPayload || fragmentBytes + len > opts.maxPayload) return protocolError(1009);
        if (have < hl + len) return;
        const mask = masked ? Buffer.from(hdr.subarray(hl - 4, hl)) : undefined;
        take(hl);
        const payload = len > 0 ? take(len) : Buffer.alloc(0);
        if (mask)
          for (let i = 0; i < payload.length; i++)
            payload[i] = (payload[i] as number) ^ (mask[i & 3] as number);
        if (opcode >= 0x8) {
          if (!fin || len > 125) return protocolError(1002);
          if (opcode === OP_PING) write(OP_PONG, payload);
          else if (opcode === OP_CLOSE) {
            closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
            sendClose(payload.length >= 2 ? closeCode : 1000);
            return;
          } else if (opcode !== OP_PONG) return protocolError(1002);
          continue;
        }
        if (opcode === OP_CONT) {
          if (fragmentOp === 0) return protocolError(1002);
        } else if (opcode === OP_TEXT || opcode === OP_BINARY) {
          if (fragmentOp !== 0) return protocolError(1002);
          fragmentOp = opcode;
        } else return protocolError(1002);
        if (!fin) {
          fragments.push(payload);
          fragmentBytes += len;
          continue;
        }
        let data = payload;
        if (fragments.length > 0) {
          fragments.push(payload);
          data = Buffer.concat(fragments, fragmentBytes + len);
          fragments = [];
          fragmentBytes = 0;
        }
        const isBinary = fragmentOp === OP_BINARY;
        fragmentOp = 0;
        handlers.message(data, isBinary);
      }
    };

    /** Before the upgrade completes: wait for the response head, check it, keep what follows it. */
    const onHandshake = (): void => {
      const head = Buffer.concat(chunks);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) {
        if (head.length > 16 * 1024) socket.destroy(failure('WebSocket handshake too large', 'EPROTO'));
        chunks = [head];
        return;
      }
      const lines = head.subarray(0, end).toString('latin1').split('\r\n');
      const ok =
        /^HTTP\/1\.1 101 /.test(lines[0] ?? '') &&
        lines.some((l) => /^sec-websocket-accept\s*:\s*\S/i.test(l));
      if (!ok) {
        socket.destroy(failure(`WebSocket upgrade refused: ${lines[0] ?? ''}`, 'EPROTO'));
        return;
      }
      const rest = head.subarray(end + 4);
      chunks = rest.length > 0 ? [rest] : [];
      have = rest.length;
      open = true;
      clearTimeout(timer);
      resolve(ws);
      parseFrames();
    };

    const ws: UnixWs = {
      send(data) {
        write(OP_BINARY, data);
      },
      pause() {
        socket.pause();
      },
      resume() {
        socket.resume();
      },
      close() {
        if (!open) {
          socket.destroy();
          return;
        }
        sendClose(1000);
      },
    };

    socket.on('connect', () => {
      socket.write(
        `GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      have += chunk.length;
      if (!open) onHandshake();
      else parseFrames();
    });
    socket.on('error', (err) => {
      if (!open) {
        clearTimeout(timer);
        reject(err);
      }
      // after the upgrade: 'close' follows and reports the connection gone
    });
    socket.on('close', () => {
      clearTimeout(timer);
      if (!open) {
        reject(failure('connection closed during the WebSocket handshake', 'ECONNRESET'));
        return;
      }
      if (closed) return;
      closed = true;
      handlers.close(closeCode);
    });
  });
}

// The minimal WebSocket client (src/core/protocol/unix-ws.ts) against a raw server on a unix socket: framing
// both ways (7/16/64-bit lengths, fragments, masks), ping → pong, close codes, limits, refused upgrades.
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import { openUnixWs, type UnixWsHandlers } from '../../../src/core/protocol/unix-ws.js';
import { tempDir } from '../vault/fixtures/helpers.js';

/** One server frame (unmasked unless a mask is given). */
function frame(opcode: number, payload: Buffer, fin = true, mask?: Buffer): Buffer {
  const len = payload.length;
  const ext = len < 126 ? Buffer.alloc(0) : Buffer.alloc(len < 0x10000 ? 2 : 8);
  if (len >= 126 && len < 0x10000) ext.writeUInt16BE(len);
  else if (len >= 0x10000) ext.writeBigUInt64BE(BigInt(len));
  const b1 = (mask ? 0x80 : 0) | (len < 126 ? len : len < 0x10000 ? 126 : 127);
  const body = mask ? Buffer.from(payload.map((b, i) => b ^ (mask[i & 3] as number))) : payload;
  return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode, b1]), ext, mask ?? Buffer.alloc(0), body]);
}

/** Client frames as the server parses them (unmasked). */
function parseClientFrames(buf: Buffer): { opcode: number; payload: Buffer; masked: boolean }[] {
  const out = [];
  let off = 0;
  while (off + 2 <= buf.length) {
    const opcode = (buf[off] as number) & 0x0f;
    const masked = ((buf[off + 1] as number) & 0x80) !== 0;
    let len = (buf[off + 1] as number) & 0x7f;
    let p = off + 2;
    if (len === 126) {
      len = buf.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      len = Number(buf.readBigUInt64BE(p));
      p += 8;
    }
    const mask = masked ? buf.subarray(p, p + 4) : undefined;
    if (masked) p += 4;
    if (p + len > buf.length) break;
    const payload = Buffer.from(
      buf.subarray(p, p + len).map((b, i) => (mask ? b ^ (mask[i & 3] as number) : b)),
    );
    out.push({ opcode, payload, masked });
    off = p + len;
  }
  return out;
}

interface Peer {
  readonly socket: Socket;
  /** Everything the client sent after the upgrade request. */
  received(): Buffer;
}

async function serve(answer = 'ok'): Promise<{ path: string; peer: Promise<Peer> }> {
  const path = join(tempDir('aivault-unixws-'), 's.sock');
  let resolvePeer!: (p: Peer) => void;
  const peer = new Promise<Peer>((r) => (resolvePeer = r));
  const server: Server = createServer((socket) => {
    let buf = Buffer.alloc(0);
    let upgraded = false;
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (upgraded) return;
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString();
      buf = buf.subarray(end + 4);
      upgraded = true;
      expect(head).toMatch(/^GET \/ HTTP\/1\.1\r\n/);
      expect(head).toMatch(/\r\nSec-WebSocket-Key: [A-Za-z0-9+/]{22}==\r\n/);
      socket.write(
        answer === 'ok'
          ? 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n'
          : answer,
      );
      resolvePeer({ socket, received: () => buf });
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(path, r));
  onTestFinished(() => new Promise<void>((r) => server.close(() => r())));
  return { path, peer };
}

function recorder() {
  const messages: { data: Buffer; isBinary: boolean }[] = [];
  let closeCode: number | undefined;
  let onClose: () => void = () => undefined;
  const closed = new Promise<void>((r) => (onClose = r));
  const handlers: UnixWsHandlers = {
    message: (data, isBinary) => messages.push({ data: Buffer.from(data), isBinary }),
    close: (code) => {
      closeCode = code;
      onClose();
    },
  };
  return { messages, handlers, closed, code: () => closeCode };
}

const until = async (cond: () => boolean): Promise<void> => {
  while (!cond()) await new Promise((r) => setTimeout(r, 5));
};
const OPTS = { maxPayload: 1 << 20, handshakeTimeoutMs: 2000 };

describe('openUnixWs', () => {
  it('receives whole and fragmented messages of every length encoding, binary and text', async () => {
    const { path, peer } = await serve();
    const rec = recorder();
    const ws = await openUnixWs({ socketPath: path, ...OPTS }, rec.handlers);
    onTestFinished(() => ws.close());
    const { socket } = await peer;
    const big = Buffer.alloc(70_000, 7);
    const mid = Buffer.alloc(300, 5);
    const all = Buffer.concat([
      frame(2, Buffer.from('hi')),
      frame(2, mid),
      frame(2, big),
      frame(1, Buffer.from('te'), false),
      frame(0, Buffer.from('x'), false),
      frame(0, Buffer.from('t')),
    ]);
    for (let i = 0; i < all.length; i += 997) socket.write(all.subarray(i, i + 997)); // split anywhere
    await until(() => rec.messages.length === 4);
    expect(rec.messages[0]).toEqual({ data: Buffer.from('hi'), isBinary: true });
    expect(rec.messages[1]?.data.equals(mid)).toBe(true);
    expect(rec.messages[2]?.data.equals(big)).toBe(true);
    expect(rec.messages[3]).toEqual({ data: Buffer.from('text'), isBinary: false });
  });

  it('sends masked binary frames (7/16/64-bit lengths) and answers a ping with its payload', async () => {
    const { path, peer } = await serve();
    const rec = recorder();
    const ws = await openUnixWs({ socketPath: path, ...OPTS }, rec.handlers);
    onTestFinished(() => ws.close());
    const p = await peer;
    const sizes = [5, 200, 70_000];
    for (const n of sizes) ws.send(Buffer.alloc(n, n & 0xff));
    p.socket.write(frame(9, Buffer.from('pp')));
    await until(() => parseClientFrames(p.received()).length === 4);
    const frames = parseClientFrames(p.received());
    expect(frames.every((f) => f.masked)).toBe(true);
    expect(frames.slice(0, 3).map((f) => [f.opcode, f.payload.length])).toEqual(sizes.map((n) => [2, n]));
    expect(frames[2]?.payload.every((b) => b === (70_000 & 0xff))).toBe(true);
    expect(frames[3]).toMatchObject({ opcode: 10, payload: Buffer.from('pp') });
  });

  it('a close frame from the server: its code is reported and a close is sent back', async () => {
    const { path, peer } = await serve();
    const rec = recorder();
    await openUnixWs({ socketPath: path, ...OPTS }, rec.handlers);
    const p = await peer;
    const code = Buffer.alloc(2);
    code.writeUInt16BE(4001);
    p.socket.write(frame(8, code));
    await rec.closed;
    expect(rec.code()).toBe(4001);
    expect(parseClientFrames(p.received()).at(-1)).toMatchObject({ opcode: 8 });
  });

  it('a message over maxPayload closes with 1009; a masked server frame is still read', async () => {
    const { path, peer } = await serve();
    const rec = recorder();
    await openUnixWs({ socketPath: path, maxPayload: 1000, handshakeTimeoutMs: 2000 }, rec.handlers);
    const p = await peer;
    p.socket.write(frame(2, Buffer.from('ok'), true, Buffer.from([1, 2, 3, 4])));
    p.socket.write(frame(2, Buffer.alloc(1001)));
    await rec.closed;
    expect(rec.messages.map((m) => m.data.toString())).toEqual(['ok']);
    expect(rec.code()).toBe(1009);
  });

  it('refuses an upgrade that is not a 101, and a socket nobody listens on', async () => {
    const { path } = await serve('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n');
    await expect(openUnixWs({ socketPath: path, ...OPTS }, recorder().handlers)).rejects.toMatchObject({
      code: 'EPROTO',
    });
    await expect(
      openUnixWs({ socketPath: `${path}.none`, ...OPTS }, recorder().handlers),
    ).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

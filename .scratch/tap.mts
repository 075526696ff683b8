import { startFixture, envelope } from '../test/integration/daemon-fixture.ts';
import WebSocket from 'ws';
import { encodeFrame, decodeFrame } from '../src/protocol/frames.ts';
const fx = await startFixture();
await fx.client.invoke(envelope('/warm'));
const ws = new WebSocket(`ws+unix:${fx.daemon.socketPath}:/`, { perMessageDeflate: false, maxPayload: 1 << 28 });
const bufs: Buffer[] = [];
ws.on('open', () => {
  (ws as any)._socket.on('data', (d: Buffer) => bufs.push(Buffer.from(d)));
  ws.send(encodeFrame({ type: 'invoke', id: 1, envelope: envelope(`/large?bytes=${64 * 1024 * 1024}`), context: {}, stream: true }));
});
ws.on('error', () => {});
await new Promise((r) => ws.on('close', r));
const all = Buffer.concat(bufs);
let off = 0, n = 0;
while (off < all.length) {
  const b0 = all[off]!, b1 = all[off + 1]!;
  let len = b1 & 127, hdr = 2;
  if (len === 126) { len = all.readUInt16BE(off + 2); hdr = 4; } else if (len === 127) { len = Number(all.readBigUInt64BE(off + 2)); hdr = 10; }
  if ((b0 & 0x70) !== 0 || (b0 & 0x0f) !== 2) {
    console.log('bad header at frame', n, 'offset', off, all.subarray(off - 16, off + 32).toString('hex'));
    break;
  }
  const payload = all.subarray(off + hdr, off + hdr + len);
  const f = decodeFrame(payload);
  if (n < 3 || !f.ok) console.log(n, len, f.ok ? (f.value as any).type : f.error.message);
  off += hdr + len; n++;
}
console.log('frames', n, 'bytes', all.length);
await fx.close();

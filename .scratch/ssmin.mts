import { startSocketServer } from '../src/daemon/socket-server.ts';
import WebSocket from 'ws';
import { encodeFrame } from '../src/protocol/frames.ts';
const N = 3000;
const fakePool: any = {
  startCall(_task: any, h: any) {
    let n = 0; let credits = 4;
    const pump = () => {
      while (credits > 0 && n < N) { credits--; const size = [65536, 16384, 9, 16389][n % 4]!; const d = new Uint8Array(size).fill(0x61); h.onMessage({ t: 'chunk', data: d.buffer }); n++; }
      if (n >= N) h.onMessage({ t: 'end' });
    };
    setImmediate(() => { h.onMessage({ t: 'head', status: 200, headers: [] }); pump(); });
    return { grant: (k: number) => { credits += k; setImmediate(pump); }, abort() {}, done: Promise.resolve() };
  },
};
const path = '/tmp/ssmin.sock';
await startSocketServer(fakePool, { socketPath: path, socketMode: 0o600, socketDirMode: 0o700 });
const c = new WebSocket(`ws+unix:${path}:/`, { maxPayload: 1 << 27, perMessageDeflate: false });
let got = 0;
c.on('open', () => c.send(encodeFrame({ type: 'invoke', id: 1, envelope: { capability: 'x', request: { method: 'GET', path: '/' } }, context: {}, stream: true })));
c.on('message', () => { got++; if (process.argv[2] === 'slow' && got % 50 === 0) { c.pause(); setTimeout(() => c.resume(), 20); } if (got === N + 2) { console.log('ok', got); process.exit(0); } });
c.on('error', (e) => { console.log('ERR after', got, e.message); process.exit(1); });

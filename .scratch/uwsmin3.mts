import { App } from '../src/daemon/uws.ts';
import WebSocket from 'ws';
import { encodeFrame } from '../src/protocol/frames.ts';
const path = '/tmp/uwsmin3.sock';
try { (await import('node:fs')).unlinkSync(path); } catch {}
const N = 4000;
const MODE = process.argv[2];
App().ws('/*', {
  maxPayloadLength: 1 << 26, maxBackpressure: 1 << 30, idleTimeout: 0,
  message: (ws) => {
    let n = 0;
    const pump = () => {
      for (let i = 0; i < 8 && n < N; i++, n++) {
        const size = [65536, 16384, 9, 114000][n % 4]!;
        const data = new Uint8Array(size).fill(n & 255);
        const bytes = MODE === 'raw' ? Buffer.concat([Buffer.from([n & 255]), data]) : encodeFrame({ type: 'chunk', id: 1, data });
        ws.cork(() => ws.send(bytes, true, false));
      }
      if (n < N) setImmediate(pump);
    };
    pump();
  },
}).listen_unix(() => {
  const c = new WebSocket(`ws+unix:${path}:/`, { maxPayload: 1 << 27, perMessageDeflate: false });
  let got = 0;
  c.on('open', () => c.send(Buffer.from([1])));
  c.on('message', () => { got++; if (got % 50 === 0) { c.pause(); setTimeout(() => c.resume(), 20); } if (got === N) { console.log('ok', got); process.exit(0); } });
  c.on('error', (e) => { console.log('ERR after', got, e.message); process.exit(1); });
}, path);

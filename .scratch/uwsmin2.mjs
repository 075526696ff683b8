import uws from 'uWebSockets.js';
import WebSocket from 'ws';
import { Worker, MessageChannel } from 'node:worker_threads';
const path = '/tmp/uwsmin2.sock';
try { (await import('node:fs')).unlinkSync(path); } catch {}
const N = 3000;
const app = uws.App().ws('/*', {
  maxPayloadLength: 1 << 26, maxBackpressure: 1 << 30, idleTimeout: 0,
  message: (ws) => {
    const { port1, port2 } = new MessageChannel();
    const w = new Worker(`
      const { workerData } = require('node:worker_threads');
      const port = workerData.port;
      let n = 0;
      function pump() { for (let i = 0; i < 8 && n < ${N}; i++, n++) { const b = new Uint8Array(65536).fill(n & 255); port.postMessage(b.buffer, [b.buffer]); } if (n < ${N}) setImmediate(pump); }
      pump();`, { eval: true, workerData: { port: port2 }, transferList: [port2] });
    port1.on('message', (ab) => { ws.cork(() => ws.send(new Uint8Array(ab), true, false)); });
  },
}).listen_unix((s) => {
  const c = new WebSocket(`ws+unix:${path}:/`, { maxPayload: 1 << 27 });
  let got = 0;
  c.on('open', () => c.send(Buffer.from([1])));
  c.on('message', (d) => { if (d[0] !== (got & 255)) { console.log('corrupt at', got); process.exit(1);} got++; if (got === N) { console.log('ok', got); process.exit(0); } });
  c.on('error', (e) => { console.log('ERR after', got, e.message); process.exit(1); });
}, path);

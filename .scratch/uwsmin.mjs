import uws from 'uWebSockets.js';
import WebSocket from 'ws';
const path = '/tmp/uwsmin.sock';
try { (await import('node:fs')).unlinkSync(path); } catch {}
const CORK = process.argv[2] === 'cork';
const FROMTIMER = process.argv[3] === 'timer';
const app = uws.App().ws('/*', {
  maxPayloadLength: 1 << 26, maxBackpressure: 1 << 30, idleTimeout: 0,
  message: (ws) => {
    let n = 0;
    const payload = Buffer.alloc(65550, 1);
    const pump = () => {
      for (let i = 0; i < 16 && n < 2000; i++, n++) {
        const doSend = () => ws.send(payload, true, false);
        if (CORK) ws.cork(doSend); else doSend();
      }
      if (n < 2000) FROMTIMER ? setImmediate(pump) : pump();
    };
    pump();
  },
}).listen_unix((s) => {
  const c = new WebSocket(`ws+unix:${path}:/`, { maxPayload: 1 << 27 });
  let got = 0;
  c.on('open', () => c.send(Buffer.from([1])));
  c.on('message', () => { got++; if (got === 2000) { console.log('ok', got); process.exit(0); } });
  c.on('error', (e) => { console.log('ERR after', got, e.message); process.exit(1); });
}, path);

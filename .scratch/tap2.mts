import { startFixture, envelope } from '../test/integration/daemon-fixture.ts';
import WebSocket from 'ws';
import { spawn } from 'node:child_process';
import { encodeFrame } from '../src/protocol/frames.ts';
import { createTestCa } from '../test/support/test-ca.ts';
const fx = await startFixture();
await fx.daemon.stop();
const sock = fx.daemon.socketPath + '2';
const child = spawn('npx', ['tsx', 'src/daemon/main.ts', '--socket', sock, '--workers', process.env.W ?? '2'], {
  env: { ...process.env, HOME: fx.config.homeDir, AIVAULT_DIR: fx.config.vaultDir, AIVAULT_DEV_RESOLVE: `upstream.test=127.0.0.1:${fx.upstream.port}`, AIVAULT_DEV_CA_CERT_PATH: createTestCa().caCertPath, AIVAULT_DEV_HTTP1_ONLY: '1' },
  stdio: ['ignore', 'inherit', 'pipe'],
});
await new Promise<void>((r) => child.stderr!.on('data', (d) => { if (String(d).includes('listening')) r(); }));
const ws = new WebSocket(`ws+unix:${sock}:/`, { perMessageDeflate: false, maxPayload: 1 << 28 });
let got = 0; let bytes = 0;
ws.on('open', () => ws.send(encodeFrame({ type: 'invoke', id: 1, envelope: envelope(`/large?bytes=${256 * 1024 * 1024}`), context: {}, stream: true })));
ws.on('message', (d: Buffer) => { got++; bytes += d.length; });
ws.on('error', (e) => console.log('ERR', got, e.message));
const t = Date.now();
await new Promise((r) => { ws.on('close', r); setTimeout(r, 30000); });
console.log('frames', got, 'bytes', bytes, 'ms', Date.now() - t);
child.kill('SIGTERM');
await fx.close();

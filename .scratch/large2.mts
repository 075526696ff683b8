import { startFixture, envelope } from '../test/integration/daemon-fixture.ts';
import { connect } from '../src/protocol/client.ts';
const fx = await startFixture();
await fx.client.invoke(envelope('/warm'));
const c = await connect({ socketPath: fx.daemon.socketPath, highWaterMark: 2 ** 40 });
const s = c.stream(envelope(`/large?bytes=${64*1024*1024}`));
try {
  console.log((await s.head).status);
  let total = 0;
  for await (const ch of s.body) total += ch.byteLength;
  console.log('total', total);
} catch (e) { console.log('ERR', (e as Error).message); }
c.close();
await fx.close();

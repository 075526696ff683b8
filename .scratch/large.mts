import { startFixture, envelope } from '../test/integration/daemon-fixture.ts';
const fx = await startFixture();
await fx.client.invoke(envelope('/warm'));
const s = fx.client.stream(envelope(`/large?bytes=${64*1024*1024}`));
try {
  console.log((await s.head).status);
  let total = 0;
  for await (const c of s.body) total += c.byteLength;
  console.log('total', total);
} catch (e) { console.log('ERR', e); }
await fx.close();

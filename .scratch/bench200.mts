import { startFixture, envelope } from '../test/integration/daemon-fixture.ts';
const fx = await startFixture();
let t = Date.now();
await fx.client.invoke(envelope('/warm'));
console.log('first', Date.now() - t);
for (let round = 0; round < 3; round++) {
  t = Date.now();
  await Promise.all(Array.from({ length: 200 }, (_, i) => fx.client.invoke(envelope(`/c/${i}`))));
  console.log('200 concurrent', Date.now() - t);
}
t = Date.now();
for (let i = 0; i < 50; i++) await fx.client.invoke(envelope(`/s/${i}`));
console.log('50 sequential', Date.now() - t);
await fx.close();

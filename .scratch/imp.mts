const t = Date.now();
await import('../src/pipeline/deps.ts');
console.log('deps import', Date.now() - t);
const t2 = Date.now();
await import('../src/registry/index.ts');
console.log('registry', Date.now() - t2);

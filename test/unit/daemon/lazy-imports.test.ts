// Memory (issue 12 item 5): the daemon's modules must not load packages they only need on request —
// undici's full entry (fetch, WebSocket, cache, mocks), ioredis, node-forge, pg —
// because every thread that imports them keeps their code in its own heap (bench/PROFILE.md, Memory).
// Checked in a fresh process: which CommonJS files are in the module cache after importing our modules.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../../..');

/** The node_modules files loaded after importing `modules` (paths from the repo root), then `after`. */
function loadedAfter(modules: readonly string[], after = ''): string[] {
  const imports = modules.map((m) => `await import(${JSON.stringify(resolve(ROOT, m))});`).join('\n');
  const code = `${imports}
${after}
const { createRequire } = await import('node:module');
console.log(JSON.stringify(Object.keys(createRequire(import.meta.url).cache)));`;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, AIVAULT_DIR: resolve(ROOT, '.no-such-vault') },
  });
  const files = JSON.parse(out.trim().split('\n').at(-1) as string) as string[];
  return files.map((f) => f.slice(f.lastIndexOf('node_modules/') + 'node_modules/'.length));
}

const has = (files: readonly string[], prefix: string): boolean => files.some((f) => f.startsWith(prefix));

describe('lazy imports (memory)', () => {
  it('a request worker pipeline loads undici without its entry, and no ioredis, ws or AWS signer', () => {
    const files = loadedAfter([
      'src/request-worker/pipeline/upstream.ts',
      'src/request-worker/pipeline/invoke.ts',
      'src/request-worker/auth/index.ts',
    ]);
    expect(has(files, 'undici/lib/dispatcher/agent.js')).toBe(true); // the probe sees CommonJS loads
    expect(has(files, 'undici/index.js')).toBe(false);
    expect(has(files, 'undici/lib/web/fetch/')).toBe(false);
    expect(has(files, 'ioredis/')).toBe(false);
    expect(has(files, 'ws/')).toBe(false);
    expect(has(files, '@smithy/')).toBe(false);
  });

  it('the AWS signer loads with the first SigV4 signature', () => {
    const sign = `const { signAwsRequest } = await import(${JSON.stringify(resolve(ROOT, 'src/request-worker/auth/aws-sigv4.ts'))});
const r = await signAwsRequest({ method: 'GET', host: 'sts.amazonaws.com', path: '/', query: 'Action=GetCallerIdentity', headers: [], body: new Uint8Array() },
  { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'x' }, { region: 'us-east-1', service: 'sts', date: new Date(0) });
if (!r.ok || !r.value.some(([n]) => n === 'authorization')) throw new Error('not signed');`;
    const files = loadedAfter(['src/request-worker/auth/index.ts'], sign);
    expect(has(files, '@smithy/signature-v4/')).toBe(true);
  });

  it('the probe notices a package entry once something imports it', () => {
    const files = loadedAfter(['src/request-worker/pipeline/upstream.ts'], "await import('undici');");
    expect(has(files, 'undici/index.js')).toBe(true);
  });

  it("aivaultd's main thread loads neither the HTTPS proxy's CA library nor pg unless configured", () => {
    const files = loadedAfter(['src/front/main.ts', 'src/stores/fleet/daemon.ts']);
    expect(has(files, 'node-forge/')).toBe(false);
    expect(has(files, 'pg/')).toBe(false);
    expect(has(files, 'ioredis/')).toBe(false);
  });
});

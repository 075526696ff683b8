import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { CryptoReply, CryptoRequest } from '../../src/core/threads/crypto-protocol.js';
import type { MainToWorkerPort, WorkerPortToMain } from '../../src/core/threads/call-port.js';
import { envelope, SECRET, startFixture, type DaemonFixture } from './daemon-fixture.js';

let fx: DaemonFixture;
beforeAll(async () => {
  fx = await startFixture({ workers: 1, env: { AIVAULT_KEY: 'AAAAbm90LWEtcmVhbC1rZXktYnV0LXNlY3JldA==' } });
}, 60_000);
afterAll(() => fx?.close());

function keyMaterial(): string[] {
  const file = readFileSync(fx.config.defaultKeyFile, 'utf8').trim();
  return [file, Buffer.from(file, 'base64').toString('hex'), SECRET];
}

describe('request workers hold no key', () => {
  it('workerData carries no key material and the worker environment is empty', () => {
    const opts = fx.daemon.pool.piscina.options;
    const text = JSON.stringify(opts.workerData, (_k, v: unknown) =>
      v instanceof SharedArrayBuffer ? `SAB(${v.byteLength})` : v,
    );
    for (const needle of keyMaterial()) expect(text).not.toContain(needle);
    expect(text).not.toMatch(/"(kek|key|passphrase|secret)"\s*:/i);
    expect(text).not.toContain('bm90LWEtcmVhbC1rZXktYnV0LXNlY3JldA'); // the AIVAULT_KEY value in the daemon env
    expect(opts.env).toEqual({});
  });

  it('a request worker cannot decrypt by itself: every secret comes from the crypto port', async () => {
    // Same entry, workerData and environment as the daemon's pool, but the test plays the crypto worker.
    const opts = fx.daemon.pool.piscina.options;
    const pool = new Piscina({
      filename: opts.filename as string,
      workerData: opts.workerData,
      env: {},
      atomics: 'disabled',
      minThreads: 1,
      maxThreads: 1,
    });
    onTestFinished(() => pool.destroy());
    const call = new MessageChannel();
    const crypto = new MessageChannel();
    onTestFinished(() => {
      call.port1.close();
      crypto.port1.close();
    });
    const asked: CryptoRequest[] = [];
    crypto.port1.on('message', (req: CryptoRequest) => {
      asked.push(req);
      const reply: CryptoReply =
        req.op === 'dev'
          ? { rid: req.rid, ok: true, dev: true }
          : req.op === 'policy-seal'
            ? { rid: req.rid, ok: true, policySeal: { sealed: false } } // a file-key vault is not sealed
            : { rid: req.rid, ok: false, error: { error: 'vault_unavailable', message: 'no key here' } };
      crypto.port1.postMessage(reply);
    });
    const out: WorkerPortToMain[] = [];
    let answered!: () => void;
    const settled = new Promise<void>((r) => (answered = r));
    call.port1.on('message', (msg: WorkerPortToMain) => {
      if (msg.t === 'need-crypto')
        call.port1.postMessage({ t: 'crypto-port', port: crypto.port2 }, [crypto.port2]);
      else {
        out.push(msg);
        answered();
      }
    });
    const before = fx.upstream.requests.length;
    // The pool's protocol: one attach task hands the worker its call port, calls are started on it by id.
    await pool.run({ kind: 'attach', port: call.port2 }, { name: 'attach', transferList: [call.port2] });
    call.port1.postMessage({
      t: 'call',
      id: 7,
      envelope: envelope('/isolated'),
      context: {},
      stream: false,
    } satisfies MainToWorkerPort);
    await settled;
    await new Promise((r) => setTimeout(r, 50));
    expect(out).toEqual([
      { t: 'error', id: 7, error: { error: 'vault_unavailable', message: 'no key here' } },
    ]);
    // It asks for the policy-seal state (to read broker.json / capabilities.json), values and the audit
    // sealing subkey (to seal the call's audit line), nothing else: subkeys and values, never the KEK.
    expect(asked.map((a) => a.op).filter((op) => op !== 'policy-seal')).toEqual([
      'dev',
      'decrypt',
      'audit-key',
    ]);
    expect(new Set(asked.map((a) => a.op))).toEqual(new Set(['dev', 'policy-seal', 'decrypt', 'audit-key']));
    expect(fx.upstream.requests.length).toBe(before);
  }, 30_000);

  it('the crypto worker entry is separate from the request worker entry', () => {
    const opts = fx.daemon.pool.piscina.options;
    const data = opts.workerData as Record<string, string>;
    const entry = data.__aivaultWorker ?? (opts.filename as string);
    expect(entry).toMatch(/request-worker\/entry\.(ts|js)$/);
    expect(fileURLToPath(new URL(entry.startsWith('file:') ? entry : `file://${entry}`))).not.toMatch(
      /crypto/,
    );
  });
});

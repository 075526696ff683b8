/**
 * The crypto worker thread (exactly one per daemon): holds the KEK via CryptoService and answers
 * request workers over their own MessagePorts. The main thread only attaches ports and forwards operator
 * frames (unlock/lock/status); it never receives secret values. See src/core/threads/crypto-protocol.ts.
 */
import { performance } from 'node:perf_hooks';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { CryptoService } from './crypto-service.js';
import { configFromWorkerData, type CryptoWorkerData } from '../core/threads/crypto-protocol.js';
import type { CryptoRequest, CryptoReply, ControlRequest } from '../core/threads/crypto-protocol.js';
import { toWire } from '../core/errors.js';
import { CommandExecutor } from './operator-executor.js';
import { toWirePolicySeal } from '../core/threads/crypto-protocol.js';
import { setPolicySealSource } from '../stores/vault/policy-seal.js';
import { useTestLockStaleness } from '../stores/vault/store.js';
import { Generation } from '../core/threads/generation.js';
import { MetricsWriter, REGION_CRYPTO } from '../core/threads/metrics-buffer.js';
import { startThreadSampler } from '../core/threads/thread-sampler.js';

const data = workerData as CryptoWorkerData;
const config = configFromWorkerData(data);
useTestLockStaleness(config);
// The vault generation shared with the main thread and the request workers (src/core/threads/generation.ts).
const generation = data.generation ? new Generation(data.generation) : undefined;
const service = new CryptoService(config, generation ? { generation } : {});
// This thread's event-loop delay/utilisation for /metrics (crypto worker utilisation); counters only.
const metrics = (workerData as { metrics?: SharedArrayBuffer }).metrics;
if (metrics) startThreadSampler(new MetricsWriter(metrics, REGION_CRYPTO));
// Policy files read by operator commands here are checked with the daemon's own KEK when it holds one.
setPolicySealSource(config.vaultDir, () => service.policySeal());
// Operator commands run here, beside the KEK: the daemon is the vault's only writer while it runs.
const commands = new CommandExecutor(config, {
  onPassphraseRotated: async (passphrase) => {
    if (!(await service.status()).locked) await service.unlock(passphrase);
  },
  afterWrite: () => generation?.bump(),
});

async function answer(req: CryptoRequest): Promise<{ reply: CryptoReply; transfer: ArrayBuffer[] }> {
  try {
    if (req.op === 'dev') {
      return { reply: { rid: req.rid, ok: true, dev: await service.devVerified() }, transfer: [] };
    }
    if (req.op === 'audit-key') {
      const key = new Uint8Array(await service.auditKey());
      return { reply: { rid: req.rid, ok: true, auditKey: key.buffer }, transfer: [key.buffer] };
    }
    if (req.op === 'policy-seal') {
      const { wire, transfer } = toWirePolicySeal(await service.policySeal());
      return { reply: { rid: req.rid, ok: true, policySeal: wire }, transfer };
    }
    if (req.op === 'write') {
      await service.writeSecret(req.secretId, new Uint8Array(req.value));
      return { reply: { rid: req.rid, ok: true, written: true }, transfer: [] };
    }
    if (req.op === 'lease') {
      const { leaseId, value } = await service.leaseSecret(req.secretId);
      const buf = new Uint8Array(value.byteLength);
      buf.set(value);
      value.fill(0);
      return { reply: { rid: req.rid, ok: true, leaseId, value: buf.buffer }, transfer: [buf.buffer] };
    }
    if (req.op === 'release') {
      const value = req.value === undefined ? undefined : new Uint8Array(req.value);
      await service.releaseSecret(req.secretId, req.leaseId, value);
      return { reply: { rid: req.rid, ok: true, written: true }, transfer: [] };
    }
    const values = await service.decrypt(req.secretIds);
    const out: Record<string, ArrayBuffer> = {};
    const transfer: ArrayBuffer[] = [];
    for (const [id, bytes] of values) {
      const buf = new Uint8Array(bytes.byteLength);
      buf.set(bytes);
      bytes.fill(0);
      out[id] = buf.buffer;
      transfer.push(buf.buffer);
    }
    return { reply: { rid: req.rid, ok: true, values: out }, transfer };
  } catch (err) {
    return { reply: { rid: req.rid, ok: false, error: toWire(err) }, transfer: [] };
  }
}

function serve(port: MessagePort): void {
  port.on('message', (req: CryptoRequest) => {
    void answer(req).then(({ reply, transfer }) => port.postMessage(reply, transfer));
  });
}

parentPort?.on('message', (msg: ControlRequest) => {
  if (msg.op === 'attach') return serve(msg.port);
  if (msg.op === 'shutdown') {
    service.dispose();
    parentPort?.postMessage({ rid: msg.rid, ok: true, data: { locked: true } });
    return;
  }
  const run = async (): Promise<Record<string, string | number | boolean | null>> => {
    if (msg.op === 'unlock') return service.unlock(msg.passphrase);
    if (msg.op === 'lock') return service.lock();
    if (msg.op === 'verify-passphrase') return service.verifyPassphrase(msg.passphrase);
    if (msg.op === 'command') {
      const { rid: _rid, op: _op, ...job } = msg;
      return commands.run(job);
    }
    if (msg.op === 'audit-key') return { auditKey: (await service.auditKey()).toString('base64') };
    if (msg.op === 'policy-seal') {
      const s = await service.policySeal();
      if (!s.sealed) return { sealed: false };
      return { sealed: true, vaultId: s.vaultId, kid: s.kid, key: Buffer.from(s.key).toString('base64') };
    }
    // Event-loop busy/idle ms since this thread started: two `status` readings give the crypto worker's
    // utilisation over a window (bench/ reports it; it must never be the bottleneck).
    const elu = performance.eventLoopUtilization();
    return { ...(await service.status()), cryptoElActiveMs: elu.active, cryptoElIdleMs: elu.idle };
  };
  run().then(
    (data) => parentPort?.postMessage({ rid: msg.rid, ok: true, data }),
    (err: unknown) => parentPort?.postMessage({ rid: msg.rid, ok: false, error: toWire(err) }),
  );
});

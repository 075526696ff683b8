/**
 * Request worker entry (piscina): thin. Each task is one invocation whose output goes to the main thread
 * over the task's own MessagePort (see src/pipeline/call-port.ts). Secrets come from the crypto worker
 * over this worker's private port; this thread never holds the KEK, and its environment is empty.
 */
import { workerData } from 'node:worker_threads';
import { AivaultError, toWire } from '../src/errors.js';
import { configFromWorkerData, CryptoPortClient } from '../src/daemon/crypto-protocol.js';
import type { InvokeTask, RequestWorkerData } from '../src/daemon/pool.js';
import { createPortSink, type MainToWorker, type WorkerToMain } from '../src/pipeline/call-port.js';
import { createPipelineDeps } from '../src/pipeline/deps.js';
import { invokeCapability, type SecretSource } from '../src/pipeline/invoke.js';
import { RateLimiter } from '../src/pipeline/rate-limit.js';
import { registry } from '../src/registry/index.js';
import type { WsTask } from '../src/daemon/http-ws-protocol.js';
import { runWsRelay } from '../src/daemon/http-ws-upstream.js';

const data = workerData as RequestWorkerData;
const config = configFromWorkerData(data);
const rateLimiter = new RateLimiter(data.rateLimit);

/** This worker's crypto client, obtained once through the first call's port (`need-crypto`). */
let crypto: Promise<CryptoPortClient> | undefined;

function cryptoVia(port: InvokeTask['port']): Promise<CryptoPortClient> {
  if (crypto) return crypto;
  const pending = new Promise<CryptoPortClient>((resolve) => {
    const onMessage = (msg: MainToWorker): void => {
      if (msg.t !== 'crypto-port') return;
      port.off('message', onMessage);
      const client = new CryptoPortClient(msg.port);
      // The crypto worker died: forget this client so the next call asks for a port to its replacement.
      client.onClose(() => {
        if (crypto === pending) crypto = undefined;
      });
      resolve(client);
    };
    port.on('message', onMessage);
    port.postMessage({ t: 'need-crypto' } satisfies WorkerToMain);
  });
  crypto = pending;
  return pending;
}

/** The client obtained by this call (cryptoVia ran first); vault_unavailable if its worker just died. */
function currentCrypto(): Promise<CryptoPortClient> {
  if (!crypto)
    return Promise.reject(new AivaultError('vault_unavailable', 'the crypto worker stopped; retry the call'));
  return crypto;
}

/** Secrets for every call of this worker; valid once the first call has obtained the crypto port. */
const secrets: SecretSource = {
  async devOverrides() {
    return (await currentCrypto().then((c) => c.dev())) ? config.devRequested : undefined;
  },
  decrypt: async (ids) => (await currentCrypto()).decrypt(ids),
  write: async (id, value) => (await currentCrypto()).write(id, value),
  async lease(id) {
    const client = await currentCrypto();
    const { leaseId, value } = await client.lease(id);
    return { value, release: (next?: string) => client.release(id, leaseId, next) };
  },
};

const deps = {
  ...createPipelineDeps(config, { registry, rateLimiter, secrets }),
  // The message names the audit file and errno only (never event contents).
  onAuditError: (err: unknown) => process.stderr.write(`aivaultd: ${(err as Error).message}\n`),
};

export default async function handle(task: InvokeTask | WsTask): Promise<void> {
  if (task.kind === 'ws') {
    // WebSocket relay for the loopback HTTP listener (GET /aivault/ws).
    return runWsRelay(deps, task, cryptoVia(task.port));
  }
  const { port } = task;
  const controller = new AbortController();
  const sink = createPortSink(port, controller.signal);
  port.on('message', (msg: MainToWorker) => {
    if (msg.t === 'credit') sink.grant(msg.n);
    else if (msg.t === 'abort') {
      controller.abort(new AivaultError('upstream_unreachable', 'invocation cancelled by the caller'));
    }
  });
  try {
    await cryptoVia(port);
    await invokeCapability(
      deps,
      {
        envelope: task.envelope,
        context: task.context,
        stream: task.stream,
        ...(task.timeoutMs !== undefined ? { timeoutMs: task.timeoutMs } : {}),
        signal: controller.signal,
      },
      sink,
    );
  } catch (err) {
    port.postMessage({ t: 'error', error: toWire(err) } satisfies WorkerToMain);
  } finally {
    port.close();
  }
}

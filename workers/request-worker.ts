/**
 * Request worker entry (piscina): thin. The pool runs one `attach` task per worker, which hands over this
 * worker's long-lived MessagePort to the main thread; invocations are started, credited, cancelled and
 * answered on it, multiplexed by call id (see src/pipeline/call-port.ts). The default export is the
 * WebSocket relay task (one piscina task + MessagePort per relay). Secrets come from the crypto worker
 * over this worker's private port; this thread never holds the KEK, and its environment is empty.
 */
import { threadId, workerData, type MessagePort } from 'node:worker_threads';
import { AivaultError, toWire } from '../src/errors.js';
import { hasDevRequests } from '../src/config/env.js';
import { configFromWorkerData } from '../src/daemon/crypto-protocol.js';
import { CryptoPortClient } from '../src/daemon/crypto-client.js';
import type { AttachTask, RequestWorkerData } from '../src/daemon/pool.js';
import {
  createPortSink,
  type CallStart,
  type MainToWorker,
  type MainToWorkerPort,
  type WorkerPortToMain,
  type WorkerToMain,
} from '../src/pipeline/call-port.js';
import { createPipelineDeps } from '../src/pipeline/deps.js';
import { envelopeOf } from '../src/pipeline/call-request.js';
import { invokeCapability } from '../src/pipeline/invoke.js';
import { RateLimiter, type Admission } from '../src/pipeline/rate-limit.js';
import { RedisAdmission } from '../src/fleet/redis-admission.js';
import type { AskApproval, SecretSource } from '../src/pipeline/types.js';
import type { ApprovalOutcome } from '../src/daemon/approvals.js';
import { Generation, perGeneration } from '../src/daemon/generation.js';
import { cachedDecrypt, SecretCache } from '../src/daemon/secret-cache.js';
import { registry } from '../src/registry/index.js';
import { setPolicySealSource } from '../src/vault/policy-seal.js';
import type { WsTask } from '../src/daemon/http-ws-protocol.js';
import { runWsRelay } from '../src/daemon/http-ws-upstream.js';

const data = workerData as RequestWorkerData;
const config = configFromWorkerData(data);
// Fleet mode (--fleet-redis): the shared Redis window; otherwise the process-wide SharedArrayBuffer table.
const fleet = config.fleet?.redisUrl
  ? new RedisAdmission({
      url: config.fleet.redisUrl,
      fleetId: config.fleet.id,
      failOpen: config.fleet.failOpen,
      audit: async (event) => {
        await deps.audit(event);
      },
    })
  : undefined;
const rateLimiter: Admission = fleet ?? new RateLimiter(data.rateLimit);
const generation = new Generation(data.generation);

/** This worker's crypto client, obtained once through the first call's port (`need-crypto`). */
let crypto: Promise<CryptoPortClient> | undefined;

function cryptoVia(port: MessagePort): Promise<CryptoPortClient> {
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
/**
 * The crypto worker's dev verdict, per vault generation: it changes only with vault.json or the KEK
 * (rotate-master, lock/unlock, a crypto-worker restart), all of which bump the generation.
 */
const devVerdict = perGeneration(generation, 'dev', async () => (await currentCrypto()).dev());

/** Decrypted values of this worker (src/daemon/secret-cache.ts); zeroed at shutdown. */
const secretCache = new SecretCache(generation);

const secrets: SecretSource = {
  async devOverrides() {
    // Nothing requested (every production call): no crypto round trip for a verdict that changes nothing.
    if (!hasDevRequests(config.devRequested)) return undefined;
    return (await devVerdict()) ? config.devRequested : undefined;
  },
  // Warm calls are answered from this worker's secure-memory cache (no crypto round trip); dropped on a bump.
  decrypt: cachedDecrypt(secretCache, generation, async (ids) => (await currentCrypto()).decrypt(ids)),
  write: async (id, value) => (await currentCrypto()).write(id, value),
  async lease(id) {
    const client = await currentCrypto();
    const { leaseId, value } = await client.lease(id);
    return { value, release: (next?: string) => client.release(id, leaseId, next) };
  },
};

// Policy files (broker.json, capabilities.json) are verified with the MAC subkey the crypto worker hands
// out after checking vault.json's seal flag against the KEK; this thread never holds the KEK.
setPolicySealSource(config.vaultDir, async () => (await currentCrypto()).policySeal());

const deps = {
  ...createPipelineDeps(config, {
    registry,
    rateLimiter,
    secrets,
    generation,
    // The crypto worker derives the audit subkey; this thread never sees the KEK.
    auditKey: async () => (await currentCrypto()).auditKey(),
  }),
  // The message names the audit file and errno only (never event contents).
  onAuditError: (err: unknown) => process.stderr.write(`aivaultd: ${(err as Error).message}\n`),
};
const requestDeps = { ...deps, registry };

/** WebSocket relay for the loopback HTTP listener (GET /aivault/ws): one piscina task per relay. */
export default async function handle(task: WsTask): Promise<void> {
  return runWsRelay(deps, task, cryptoVia(task.port));
}

/** One invocation started on the worker's port; its messages carry its id. */
async function runCall(port: MessagePort, msg: CallStart, calls: Map<number, ActiveCall>): Promise<void> {
  const controller = new AbortController();
  const sink = createPortSink(port, controller.signal, msg.id);
  const active: ActiveCall = { sink, controller };
  calls.set(msg.id, active);
  // Only a capability with an `approval` policy asks: the main thread holds the pending list.
  const askApproval: AskApproval = (request) =>
    new Promise<ApprovalOutcome>((resolve, reject) => {
      if (controller.signal.aborted) return reject(controller.signal.reason as Error);
      const onAbort = (): void => reject(controller.signal.reason as Error);
      controller.signal.addEventListener('abort', onAbort, { once: true });
      active.approved = (outcome) => {
        active.approved = undefined;
        controller.signal.removeEventListener('abort', onAbort);
        resolve(outcome);
      };
      const transport =
        msg.context.via ??
        ('passthrough' in msg ? 'passthrough' : 'envelopeJson' in msg ? 'proxy' : 'socket');
      port.postMessage({
        t: 'approval',
        id: msg.id,
        request: { ...request, transport },
      } satisfies WorkerPortToMain);
    });
  try {
    await cryptoVia(port);
    await invokeCapability(
      deps,
      {
        envelope: await envelopeOf(requestDeps, msg, msg.context),
        context: msg.context,
        stream: msg.stream,
        ...(msg.timeoutMs !== undefined ? { timeoutMs: msg.timeoutMs } : {}),
        signal: controller.signal,
        askApproval,
      },
      sink,
    );
  } catch (err) {
    // Through the sink: after anything it still holds (a coalesced head or chunks), in order.
    sink.error(toWire(err));
  } finally {
    // Credits and aborts must reach the sink until it posted what it holds (end/error included).
    await sink.settled();
    calls.delete(msg.id);
  }
}

interface ActiveCall {
  readonly sink: ReturnType<typeof createPortSink>;
  readonly controller: AbortController;
  /** Set while the call waits for the operator's answer. */
  approved?: (outcome: ApprovalOutcome) => void;
}

/**
 * Piscina task run once per worker by the pool: keeps `task.port` as this worker's call port and returns
 * this thread's id at once (the port's listener keeps serving; the pool learns of this worker's death
 * from the port's `close` and piscina's `workerDestroy`).
 */
export function attach(task: AttachTask): number {
  const { port } = task;
  const calls = new Map<number, ActiveCall>();
  port.on('message', (msg: MainToWorkerPort) => {
    switch (msg.t) {
      case 'call':
        void runCall(port, msg, calls);
        return;
      case 'credit':
        calls.get(msg.id)?.sink.grant(msg.n);
        return;
      case 'approval':
        calls.get(msg.id)?.approved?.(msg.outcome);
        return;
      case 'abort':
        calls
          .get(msg.id)
          ?.controller.abort(new AivaultError('upstream_unreachable', 'invocation cancelled by the caller'));
        return;
      case 'close':
        // Shutdown: close the audit day file and upstream pools explicitly (no FileHandle left to GC), and
        // zero the cached secret values (a thread's end frees memory without zeroing it).
        secretCache.clear();
        void Promise.all([deps.close(), fleet?.close()]).finally(() =>
          port.postMessage({ t: 'closed' } satisfies WorkerPortToMain),
        );
        return;
      default:
        return; // crypto-port: taken by cryptoVia's own listener
    }
  });
  return threadId;
}

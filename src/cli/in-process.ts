/**
 * AIVAULTD_DISABLE=1: the same pipeline as the daemon's request workers, run in this process with the
 * Vault as the secret source. Buffered only (streaming needs aivaultd). Rate limits here count only
 * within this process; the daemon's shared-memory limiter is the one that is exact across callers.
 */
import type { Config } from '../config/env.js';
import type { Envelope, HeaderList, RequestContext } from '../broker/types.js';
import { createPipelineDeps } from '../pipeline/deps.js';
import { invokeCapability, type SecretSource } from '../pipeline/invoke.js';
import { RateLimiter, createRateLimitBuffer } from '../pipeline/rate-limit.js';
import { Vault } from '../vault/index.js';
import { AivaultError } from '../errors.js';

export interface BufferedResponse {
  status: number;
  headers: HeaderList;
  body: Uint8Array;
}

export async function invokeInProcess(
  config: Config,
  envelope: Envelope,
  context: RequestContext,
  timeoutMs: number | undefined,
): Promise<BufferedResponse> {
  const { registry } = await import('../registry/index.js');
  const vault = await Vault.open(config);
  const secrets: SecretSource = {
    async devOverrides() {
      return vault.devEnabled() ? config.devRequested : undefined;
    },
    async decrypt(ids) {
      const out = new Map<string, string>();
      for (const id of ids) {
        const bytes = await vault.decryptSecret(id);
        try {
          out.set(id, bytes.reveal());
        } finally {
          bytes.dispose();
        }
      }
      return out;
    },
  };
  const deps = createPipelineDeps(config, {
    registry,
    secrets,
    rateLimiter: new RateLimiter(createRateLimitBuffer(256)),
  });
  let response: BufferedResponse | undefined;
  try {
    await invokeCapability(
      deps,
      { envelope, context, stream: false, ...(timeoutMs !== undefined ? { timeoutMs } : {}) },
      {
        head: () => undefined,
        chunk: async () => undefined,
        end: () => undefined,
        full: (status, headers, body) => {
          response = { status, headers, body };
        },
      },
    );
  } finally {
    await deps.close();
    vault.close();
  }
  if (!response) throw new AivaultError('internal', 'the pipeline produced no response');
  return response;
}

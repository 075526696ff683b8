/**
 * Fleet rate limits: one sliding 60 s window per capability, shared by every aivaultd of a fleet through
 * Redis (ioredis). Runs in each request worker (one connection per worker; the check is one EVALSHA round
 * trip). Used instead of the local SharedArrayBuffer table (src/core/threads/rate-limit.ts) only when
 * `--fleet-redis` is set.
 *
 * The window is a sorted set per capability: one member per admitted call, scored with REDIS'S clock
 * (TIME inside the script), so hosts with skewed clocks still share one window. The Lua script trims
 * members older than 60 s, counts, and adds one only below the limit: atomic on the server, so N hosts
 * racing for the last slot admit exactly one. At most L calls are admitted in any 60 s interval.
 *
 * What goes to Redis: the key `aivault:<fleet id>:rl:<capability id>` (capability ids are names, not
 * secrets), the limit, and a member `<random process tag>:<thread>:<counter>`. Never a secret, a token, a
 * caller's identity or a request detail.
 *
 * Failure: Redis unreachable (refused, timed out, not yet reconnected, or answering with an error) fails CLOSED: the call is refused
 * `rate_limited` with a message naming Redis. With `failOpen` it is admitted uncounted instead, a warning
 * goes to stderr and an audit event (`fleet.fail_open`) is written once per outage. ioredis reconnects in
 * the background (capped backoff), so the first call after Redis is back is counted again: no restart.
 * Commands are never queued while disconnected (enableOfflineQueue false): a queued admission could be
 * granted long after its caller was told no.
 */
import { randomBytes } from 'node:crypto';
import { threadId } from 'node:worker_threads';
import { Redis } from 'ioredis';
import { WINDOW_MS, type Admission, type RateDecision } from '../../core/threads/rate-limit.js';
import { redactUrl } from './config.js';

/** KEYS[1] window; ARGV limit, window ms, member. Returns {1, 0} admitted or {0, retryAfterMs}. */
const ADMIT_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local retry = window
if oldest[2] then retry = tonumber(oldest[2]) + window - now end
if retry < 1 then retry = 1 end
return {0, retry}
`;

/**
 * How long a call waits for the FIRST connection (start-up; a refused connection ends the wait at once)
 * before failing closed. During a known outage calls do not wait.
 */
const CONNECT_WAIT_MS = 2000;
/** Per-command timeout: a hung Redis must not hold calls. */
const COMMAND_TIMEOUT_MS = 1000;
/** Retry hint for a call refused because Redis is down. */
const UNAVAILABLE_RETRY_MS = 1000;

type AdmitFn = (key: string, limit: number, windowMs: number, member: string) => Promise<[number, number]>;

export interface RedisAdmissionOptions {
  readonly url: string;
  readonly fleetId: string;
  readonly failOpen: boolean;
  /** Audit sink for the `fleet.fail_open` event (once per outage). */
  readonly audit?: (event: { kind: string; capability?: string; note?: string }) => Promise<void>;
  /** Warnings (default stderr). */
  readonly warn?: (line: string) => void;
}

export class RedisAdmission implements Admission {
  private readonly redis: Redis;
  private readonly admit: AdmitFn;
  private readonly prefix: string;
  private readonly member: string;
  private readonly where: string;
  private seq = 0;
  /** An outage is in progress (one warning / audit event per outage, not per call). */
  private down = false;
  private closed = false;
  private connecting: Promise<boolean> | undefined;

  constructor(private readonly opts: RedisAdmissionOptions) {
    this.where = redactUrl(opts.url);
    this.prefix = `aivault:${opts.fleetId}:rl:`;
    this.member = `${randomBytes(6).toString('hex')}:${threadId}:`;
    this.redis = new Redis(opts.url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: COMMAND_TIMEOUT_MS,
      connectTimeout: 2000,
      // Reconnect forever with a capped backoff: recovery without a restart.
      retryStrategy: (times) => Math.min(50 * times, 1000),
      lazyConnect: false,
    });
    this.redis.defineCommand('aivaultAdmit', { numberOfKeys: 1, lua: ADMIT_LUA });
    this.admit = (this.redis as unknown as { aivaultAdmit: AdmitFn }).aivaultAdmit.bind(this.redis);
    // ioredis reports connection errors as events; the calls see their own failures.
    this.redis.on('error', (err: Error) => this.markDown(err));
    this.redis.on('ready', () => {
      if (this.down) this.markUp();
    });
  }

  private markUp(): void {
    this.down = false;
    this.warn(`fleet: Redis at ${this.where} is reachable again; fleet rate limits apply`);
  }

  private warn(line: string): void {
    (this.opts.warn ?? ((l: string) => process.stderr.write(`${l}\n`)))(`aivaultd: ${line}`);
  }

  private markDown(err: unknown, capabilityId?: string): void {
    if (this.down || this.closed) return;
    this.down = true;
    // An errno (ECONNREFUSED…) or Redis's own error text (no secrets: key names and counts only).
    const why = String((err as NodeJS.ErrnoException).code ?? (err as Error).message ?? 'error').slice(
      0,
      120,
    );
    if (this.opts.failOpen) {
      this.warn(
        `WARNING: fleet: Redis at ${this.where} unreachable (${why}); --fleet-fail-open: rate-limited capabilities are admitted UNCOUNTED until it is back`,
      );
      void this.opts
        .audit?.({
          kind: 'fleet.fail_open',
          ...(capabilityId !== undefined ? { capability: capabilityId } : {}),
          note: `Redis at ${this.where} unreachable; fleet rate limits not applied until it is back`,
        })
        .catch(() => undefined);
    } else {
      this.warn(
        `fleet: Redis at ${this.where} unreachable (${why}); rate-limited capabilities are refused until it is back`,
      );
    }
  }

  /**
   * Ready now, or (only before the first outage is known: start-up) after a short shared wait for the
   * connection being set up. During a known outage calls fail at once instead of each waiting.
   */
  private ready(): boolean | Promise<boolean> {
    if (this.redis.status === 'ready') return true;
    if (this.closed || this.down) return false;
    return (this.connecting ??= new Promise<boolean>((resolve) => {
      const done = (ok: boolean): void => {
        clearTimeout(timer);
        this.redis.off('ready', onReady);
        this.redis.off('error', onError);
        this.connecting = undefined;
        resolve(ok);
      };
      const onReady = (): void => done(true);
      const onError = (): void => done(false);
      const timer = setTimeout(() => done(false), CONNECT_WAIT_MS);
      this.redis.on('ready', onReady);
      this.redis.on('error', onError);
    }));
  }

  async tryAcquire(capabilityId: string, limit: number): Promise<RateDecision> {
    if (!(limit > 0)) return { admitted: false, retryAfterMs: WINDOW_MS };
    try {
      const ready = this.ready();
      if (!(ready === true || (ready !== false && (await ready))))
        throw Object.assign(new Error('not connected'), { code: 'ENOTCONN' });
      const [ok, retry] = await this.admit(
        this.prefix + capabilityId,
        Math.floor(limit),
        WINDOW_MS,
        this.member + String(++this.seq),
      );
      // An answer ends an outage even without a reconnect (e.g. Redis refused scripts while out of memory).
      if (this.down) this.markUp();
      return ok === 1 ? { admitted: true, retryAfterMs: 0 } : { admitted: false, retryAfterMs: retry };
    } catch (err) {
      this.markDown(err, capabilityId);
      if (this.opts.failOpen) return { admitted: true, retryAfterMs: 0, bypassed: true };
      return {
        admitted: false,
        retryAfterMs: UNAVAILABLE_RETRY_MS,
        unavailable: `fleet rate limit unavailable: Redis at ${this.where} is unreachable; capability ${capabilityId} is refused until it is back (fail closed)`,
      };
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }
}

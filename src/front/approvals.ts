/**
 * Pending operator approvals (issue 16), held on the daemon main thread: a call whose capability policy
 * says `approval: once|always` waits here until an operator approves or denies it, or it times out.
 * Deciding is an operator action (CLI through the operator channel, the operator HTTP API, the
 * dashboard); the caller that is waiting can never decide its own call.
 *
 * A pending entry shows what will be sent — method, host, path, body size — never a header value, a body
 * or a secret. `once` approvals are remembered per capability + caller token until `rememberMs` passes.
 */

export type ApprovalMode = 'once' | 'always';
export type ApprovalOutcome = 'approved' | 'denied' | 'timeout';

export interface ApprovalRequest {
  capability: string;
  method: string;
  host: string;
  /** Path without query string. */
  path: string;
  bodyBytes: number;
  /** Id of the caller's token (never the token itself); '' for the unix-socket caller. */
  callerTokenId: string;
  transport: string;
  mode: ApprovalMode;
}

export interface PendingApproval extends ApprovalRequest {
  id: string;
  createdAt: number;
  expiresAt: number;
}

export interface ApprovalDecision {
  id: string;
  outcome: ApprovalOutcome;
  /** Who decided ('cli', 'http', 'dashboard', …); 'timeout' for a timed-out call. */
  by: string;
  at: number;
  /** The call that was decided (for the audit line: what was asked, never a secret). */
  approval?: PendingApproval;
}

export type ApprovalListener = (
  event: { type: 'pending'; approval: PendingApproval } | { type: 'decided'; decision: ApprovalDecision },
) => void;

interface Waiter {
  pending: PendingApproval;
  resolve: (outcome: ApprovalOutcome) => void;
  timer: NodeJS.Timeout;
}

export interface ApprovalStoreOptions {
  /** How long a call waits for a decision (default 60 s). */
  timeoutMs?: number;
  /** How long a `once` approval is remembered per capability + caller token (default 10 min). */
  rememberMs?: number;
  now?: () => number;
  /** Id generator (default: random, unguessable). */
  newId?: () => string;
}

export class ApprovalStore {
  private readonly waiting = new Map<string, Waiter>();
  private readonly remembered = new Map<string, number>();
  private readonly listeners = new Set<ApprovalListener>();
  private readonly timeoutMs: number;
  private readonly rememberMs: number;
  private readonly now: () => number;
  private readonly newId: () => string;

  /** How long a call waits for a decision, in ms. */
  get waitMs(): number {
    return this.timeoutMs;
  }

  constructor(opts: ApprovalStoreOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.rememberMs = opts.rememberMs ?? 600_000;
    this.now = opts.now ?? Date.now;
    this.newId = opts.newId ?? (() => `apr_${crypto.randomUUID().replace(/-/g, '').slice(0, 20)}`);
  }

  /**
   * Wait for a decision on one call. Resolves 'approved' at once when a `once` approval for this
   * capability + caller token is still remembered. `signal` aborting (caller went away) resolves 'denied'
   * and removes the entry.
   */
  request(req: ApprovalRequest, signal?: AbortSignal): Promise<ApprovalOutcome> {
    const key = rememberKey(req);
    const until = this.remembered.get(key);
    if (req.mode === 'once' && until !== undefined) {
      if (until > this.now()) return Promise.resolve('approved');
      this.remembered.delete(key);
    }
    const createdAt = this.now();
    const pending: PendingApproval = {
      ...req,
      id: this.newId(),
      createdAt,
      expiresAt: createdAt + this.timeoutMs,
    };
    return new Promise<ApprovalOutcome>((resolve) => {
      const timer = setTimeout(() => this.finish(pending.id, 'timeout', 'timeout'), this.timeoutMs);
      timer.unref?.();
      this.waiting.set(pending.id, { pending, resolve, timer });
      signal?.addEventListener('abort', () => this.finish(pending.id, 'denied', 'caller-gone'), {
        once: true,
      });
      this.emit({ type: 'pending', approval: pending });
    });
  }

  /** Pending calls, oldest first. */
  list(): PendingApproval[] {
    return [...this.waiting.values()].map((w) => w.pending).sort((a, b) => a.createdAt - b.createdAt);
  }

  get(id: string): PendingApproval | undefined {
    return this.waiting.get(id)?.pending;
  }

  /** Operator decision. False when no such call is pending (already decided, timed out, unknown). */
  decide(id: string, outcome: 'approved' | 'denied', by: string): boolean {
    return this.finish(id, outcome, by);
  }

  subscribe(listener: ApprovalListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Drop every remembered `once` approval (lock, token revocation, policy change). */
  forgetAll(): void {
    this.remembered.clear();
  }

  /** Deny everything pending (daemon shutdown or lock). */
  denyAll(by: string): void {
    for (const id of [...this.waiting.keys()]) this.finish(id, 'denied', by);
  }

  private finish(id: string, outcome: ApprovalOutcome, by: string): boolean {
    const w = this.waiting.get(id);
    if (!w) return false;
    this.waiting.delete(id);
    clearTimeout(w.timer);
    if (outcome === 'approved' && w.pending.mode === 'once') {
      this.remembered.set(rememberKey(w.pending), this.now() + this.rememberMs);
    }
    w.resolve(outcome);
    this.emit({ type: 'decided', decision: { id, outcome, by, at: this.now(), approval: w.pending } });
    return true;
  }

  private emit(event: Parameters<ApprovalListener>[0]): void {
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        this.listeners.delete(l);
      }
    }
  }
}

function rememberKey(req: Pick<ApprovalRequest, 'capability' | 'callerTokenId'>): string {
  return `${req.capability}\u0000${req.callerTokenId}`;
}

/**
 * Pending operator approvals (issue 16), held on the daemon main thread: a call whose capability policy
 * says `approval: once|always` waits here until an operator approves or denies it, or it times out.
 * Deciding is an operator action (CLI through the operator channel, the operator HTTP API, the
 * dashboard); the caller that is waiting can never decide its own call.
 *
 * A pending entry shows what will be sent — method, host, path, body size — never a header value, a body
 * or a secret. `once` approvals are remembered per capability + caller (a proxy token, or one unix-socket
 * connection: core/broker/approval-caller.ts) until `rememberMs` passes, and only while the call's scope
 * (policy, credential, host) is what was approved. The daemon forgets them earlier when what they stood
 * for goes: its token revoked, its connection closed, its capability's policy set or the capability
 * removed (approval-staleness.ts), the vault locked.
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
  /** Id of the caller's token (never the token itself); '' for a unix-socket caller. */
  callerTokenId: string;
  /**
   * Who `once` approvals are remembered for: `token:<id>` or `socket:<connection>` (approval-caller.ts);
   * '' when the caller cannot be told apart, and then nothing is remembered (every call asks).
   */
  caller: string;
  /** What the approval covers beyond the capability (approvalScope: policy, credential, host). */
  scope: string;
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

interface Remembered {
  until: number;
  scope: string;
  capability: string;
  caller: string;
}

interface Waiter {
  pending: PendingApproval;
  resolve: (outcome: ApprovalOutcome) => void;
  timer: NodeJS.Timeout;
}

export interface ApprovalStoreOptions {
  /** How long a call waits for a decision (default 60 s). */
  timeoutMs?: number;
  /** How long a `once` approval is remembered per capability + caller (default 10 min). */
  rememberMs?: number;
  now?: () => number;
  /** Id generator (default: random, unguessable). */
  newId?: () => string;
}

export class ApprovalStore {
  private readonly waiting = new Map<string, Waiter>();
  private readonly remembered = new Map<string, Remembered>();
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
   * capability + caller is still remembered for the same scope. `signal` aborting (caller went away)
   * resolves 'denied' and removes the entry.
   */
  request(req: ApprovalRequest, signal?: AbortSignal): Promise<ApprovalOutcome> {
    if (req.mode === 'once' && this.remembers(req)) return Promise.resolve('approved');
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

  /** Drop every remembered `once` approval (lock; writes whose reach is not worth working out). */
  forgetAll(): void {
    this.remembered.clear();
  }

  /** Drop the `once` approvals of one caller (its token revoked, its socket connection closed). */
  forgetCaller(caller: string): void {
    for (const [key, r] of this.remembered) if (r.caller === caller) this.remembered.delete(key);
  }

  /** Drop the `once` approvals of one capability (its policy set, the capability removed). */
  forgetCapability(capability: string): void {
    for (const [key, r] of this.remembered) if (r.capability === capability) this.remembered.delete(key);
  }

  /** Whether a `once` approval of `req`'s capability + caller is remembered, unexpired, for its scope. */
  private remembers(req: ApprovalRequest): boolean {
    if (req.caller === '') return false;
    const key = rememberKey(req);
    const r = this.remembered.get(key);
    if (r === undefined) return false;
    if (r.until > this.now() && r.scope === req.scope) return true;
    this.remembered.delete(key);
    return false;
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
    const p = w.pending;
    if (outcome === 'approved' && p.mode === 'once' && p.caller !== '') {
      this.remembered.set(rememberKey(p), {
        until: this.now() + this.rememberMs,
        scope: p.scope,
        capability: p.capability,
        caller: p.caller,
      });
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

function rememberKey(req: Pick<ApprovalRequest, 'capability' | 'caller'>): string {
  return `${req.capability}\u0000${req.caller}`;
}

/**
 * The audit event (pure; every thread and the CLI): its fields — none can hold a secret value — and the
 * sanitizer that copies only the known fields, with sane types and bounded lengths, so an object carrying
 * extra properties cannot smuggle a value into the log. `note` is for fixed, non-secret text only.
 */
import type { Scope } from '../../core/broker/types.js';

export interface AuditEvent {
  readonly tsMs: number;
  readonly kind: string;
  readonly actor?: string;
  readonly secretId?: string;
  readonly secretName?: string;
  readonly scope?: Scope;
  readonly capability?: string;
  readonly credential?: string;
  readonly provider?: string;
  readonly host?: string;
  readonly method?: string;
  readonly path?: string;
  readonly status?: number;
  readonly durationMs?: number;
  readonly workspaceId?: string;
  readonly groupId?: string;
  readonly clientIp?: string;
  readonly errorCode?: string;
  readonly note?: string;
  /** response.scrubbed: how many reflected secret values were replaced. */
  readonly count?: number;
  /** response.scrubbed: comma-separated encoding kinds found (raw, base64, hex…), never a value. */
  readonly encodings?: string;
}

export type AuditInput = Omit<AuditEvent, 'tsMs'> & { readonly tsMs?: number };

const STRING_FIELDS = [
  'kind',
  'actor',
  'secretId',
  'secretName',
  'capability',
  'credential',
  'provider',
  'host',
  'method',
  'path',
  'workspaceId',
  'groupId',
  'clientIp',
  'errorCode',
  'note',
  'encodings',
] as const;
const NUMBER_FIELDS = ['status', 'durationMs', 'count'] as const;
const MAX_FIELD = 2048;

export function utcDay(tsMs: number): string {
  // Every audit line asks; a Date and an ISO string per line showed in the request workers' profile.
  if (tsMs >= lastDay.from && tsMs < lastDay.to) return lastDay.day;
  const from = Math.floor(tsMs / DAY_MS) * DAY_MS;
  lastDay = { from, to: from + DAY_MS, day: new Date(from).toISOString().slice(0, 10) };
  return lastDay.day;
}

const DAY_MS = 86_400_000;
let lastDay = { from: 0, to: 0, day: '' };

/** Copy only the known fields, with sane types and bounded lengths. */
export function sanitizeEvent(input: AuditInput, now = Date.now()): AuditEvent {
  const out: Record<string, unknown> = {
    tsMs: typeof input.tsMs === 'number' ? Math.trunc(input.tsMs) : now,
  };
  const src = input as Record<string, unknown>;
  for (const f of STRING_FIELDS) {
    const v = src[f];
    if (typeof v === 'string') out[f] = v.length > MAX_FIELD ? `${v.slice(0, MAX_FIELD)}…` : v;
  }
  for (const f of NUMBER_FIELDS) {
    const v = src[f];
    if (typeof v === 'number' && Number.isFinite(v)) out[f] = v;
  }
  const s = input.scope;
  if (s && typeof s === 'object' && typeof s.kind === 'string') {
    out.scope = {
      kind: s.kind,
      ...(typeof s.workspaceId === 'string' ? { workspaceId: s.workspaceId } : {}),
      ...(typeof s.groupId === 'string' ? { groupId: s.groupId } : {}),
    };
  }
  return out as unknown as AuditEvent;
}

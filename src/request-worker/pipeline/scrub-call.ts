/**
 * Which secret values one call must scrub from its response (the compiled matchers are kept by
 * ./scrubber-cache.ts), and the scrubbing of error messages. Runs where the values are (request worker, or
 * the in-process CLI); the main thread never sees them.
 */
import { AivaultError } from '../../core/errors.js';
import type { Plan } from '../../core/broker/types.js';
import { redactUrl } from '../auth/strategy.js';
import { SecretValues } from '../auth/secrets.js';
import { MIN_SCRUB_LENGTH, type ScrubMatcher, type ScrubSecret } from './scrub.js';
import { scrubberFor } from './scrubber-cache.js';

/** A value that never goes on the wire as bytes an upstream could reflect (mTLS certificate / key). */
function isPem(value: string): boolean {
  return value.includes('-----BEGIN ');
}

/** JSON-object secrets (OAuth2 state, `{"api_key","app_key"}`…) contribute their string/number fields. */
function valuesOf(value: string): string[] {
  const t = value.trimStart();
  if (t.startsWith('{')) {
    try {
      const parsed = JSON.parse(t) as unknown;
      if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
        const out: string[] = [];
        for (const v of Object.values(parsed as Record<string, unknown>)) {
          if (typeof v === 'string') out.push(v);
          else if (typeof v === 'number' && Number.isFinite(v)) out.push(String(v));
        }
        return out;
      }
    } catch {
      // not JSON: the value itself
    }
  }
  return [value];
}

/**
 * The secrets of this call: every slot value seen (before and after an OAuth2 refresh) and the basic-auth
 * token as sent. `authHeaders` are the headers the auth strategy set on the last attempt.
 */
export function scrubSecretsOf(
  plan: Pick<Plan, 'secretNames' | 'auth'>,
  slotsSeen: readonly Readonly<Record<string, string>>[],
  authHeaders: readonly (readonly [string, string])[] = [],
): ScrubSecret[] {
  const out: ScrubSecret[] = [];
  const seen = new Set<string>();
  for (const slots of slotsSeen) {
    for (const [slot, value] of Object.entries(slots)) {
      const name = plan.secretNames?.[slot] ?? slot;
      for (const v of valuesOf(value)) {
        if (v.length < MIN_SCRUB_LENGTH || isPem(v) || seen.has(v)) continue;
        seen.add(v);
        out.push({ name, value: v });
      }
    }
  }
  if ('basic' in plan.auth) {
    for (const [n, v] of authHeaders) {
      const m = n.toLowerCase() === 'authorization' ? /^basic\s+(\S+)$/i.exec(v) : null;
      if (!m?.[1]) continue;
      const decoded = Buffer.from(m[1], 'base64').toString('utf8');
      // Name it after the secret whose value is in user:pass (the password's, usually the longest).
      const owner = out
        .filter((s) => decoded.includes(s.value))
        .sort((a, b) => b.value.length - a.value.length)[0];
      const names = Object.values(plan.secretNames ?? {});
      out.push({ name: owner?.name ?? names[0] ?? 'secret', value: m[1], kind: 'basic' });
    }
  }
  return out;
}

/** Shortest secret value scrubbed from messages (shorter ones would mangle ordinary words). */
const MIN_SCRUB_CHARS = 4;

/**
 * Defence in depth: no error that leaves the pipeline may carry a credential value (as is, or
 * percent-encoded as it appears in a query or path), whatever layer produced its message.
 */
export function scrubError(
  e: AivaultError,
  slots: readonly Readonly<Record<string, string>>[],
  urlSecrets: readonly string[],
  scrubber?: ScrubMatcher,
): AivaultError {
  if (slots.length === 0 && urlSecrets.length === 0) return e;
  const all = new Set(urlSecrets);
  for (const bySlot of slots) for (const v of SecretValues.from(bySlot).valuesForRedaction()) all.add(v);
  const needles = [...all].filter((v) => v.length >= MIN_SCRUB_CHARS);
  // Encoded forms first (named replacement), then the plain/percent forms of shorter values.
  const scrub = (text: string): string => redactUrl(scrubber ? scrubber.scrubText(text) : text, needles);
  const message = scrub(e.message);
  let details = e.details;
  let changed = message !== e.message;
  if (details) {
    const next: Record<string, string | number | boolean | null> = {};
    for (const [k, v] of Object.entries(details)) {
      next[k] = typeof v === 'string' ? scrub(v) : v;
      if (next[k] !== v) changed = true;
    }
    details = next;
  }
  return changed ? new AivaultError(e.code, message, details) : e;
}

/** What one call knows of its secrets when an error leaves it (any field may still be empty). */
export interface CallSecrets {
  readonly plan: Pick<Plan, 'secretNames' | 'auth'> | undefined;
  readonly slotsSeen: readonly Readonly<Record<string, string>>[];
  readonly urlSecrets: readonly string[];
  readonly authHeaders: readonly (readonly [string, string])[];
  /** The call's response matcher when it was already built. */
  readonly scrubber?: ScrubMatcher | undefined;
}

/** `scrubError` with the call's own matcher (built here when the call failed before its response). */
export function scrubCallError(e: AivaultError, call: CallSecrets): AivaultError {
  let scrubber = call.scrubber;
  if (!scrubber && call.plan && call.slotsSeen.length > 0) {
    scrubber = scrubberFor(scrubSecretsOf(call.plan, call.slotsSeen, call.authHeaders));
  }
  return scrubError(e, call.slotsSeen, call.urlSecrets, scrubber);
}

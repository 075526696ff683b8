/**
 * Tamper evidence for the audit log: every line is sealed with a keyed MAC (HMAC-SHA-256 under the audit
 * subkey of the KEK, see stores/vault/aead.ts deriveAuditKey) and chained to the previous line of the same WRITER.
 *
 * Why per-writer chains: lines come from several request workers, the daemon's HTTP listener and any
 * number of short-lived CLI processes, all appending to the same day file with O_APPEND. One global chain
 * would need every writer to read the file's last line under a cross-process lock on every append (the hot
 * path). Instead each writer (one AuditLog instance: random id `w`) numbers its lines `n` = 0, 1, 2 … and
 * puts the previous line's MAC in `p`; its writes are serialized (group commit), so its lines are on disk in
 * order. A writer's first line also links (`l`) to the last line of the day file when it started, so a
 * whole short chain (one CLI command's line) cannot vanish without breaking a later writer's link.
 * `pd` is the day file of the writer's previous line: a chain whose start lies in a day file that
 * retention deleted is accepted; one whose start vanished from a file that still exists is not.
 *
 * A sealed line is `{…event, "w", "n", "p"?, "pd"?, "l"?, "mac"}`; the MAC covers the exact bytes of the
 * line before `,"mac":…` (plus the closing brace), so verification never re-serializes.
 *
 * What it cannot see: the newest lines cut cleanly from the end of the log after the last writer started
 * (no later line vouches for them), and the relative order of lines from DIFFERENT writers (their
 * interleaving is arbitrary anyway). A torn last line (crash mid-write) is reported as a truncated tail.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface ChainFields {
  /** Key id (see keyIdOf): tells a line sealed under another master key from an edited one. */
  readonly k?: string;
  readonly w: string;
  readonly n: number;
  readonly p?: string;
  readonly pd?: string;
  readonly l?: string;
}

const MAC_FIELD = ',"mac":"';

/** A short public id of the sealing key (not the key: an HMAC of a fixed label under it). */
export function keyIdOf(key: Uint8Array): string {
  return createHmac('sha256', key).update('aivault audit key id').digest('base64url').slice(0, 8);
}

export function macOf(key: Uint8Array, body: string): string {
  return createHmac('sha256', key).update(body).digest('base64url');
}

/** Seal a JSON object text (ending in `}`): returns the line (no newline) and its MAC. */
export function sealLine(key: Uint8Array, json: string): { line: string; mac: string } {
  const mac = macOf(key, json);
  return { line: `${json.slice(0, -1)}${MAC_FIELD}${mac}"}`, mac };
}

/** Split a sealed line into the signed text and its MAC; undefined when it carries no MAC. */
export function unsealLine(line: string): { body: string; mac: string } | undefined {
  const at = line.lastIndexOf(MAC_FIELD);
  if (at < 0 || !line.endsWith('"}')) return undefined;
  const mac = line.slice(at + MAC_FIELD.length, -2);
  if (!/^[A-Za-z0-9_-]{43}$/.test(mac)) return undefined;
  return { body: `${line.slice(0, at)}}`, mac };
}

export function macMatches(key: Uint8Array, body: string, mac: string): boolean {
  const want = Buffer.from(macOf(key, body));
  const got = Buffer.from(mac);
  return want.length === got.length && timingSafeEqual(want, got);
}

export interface DayFileText {
  /** File name (events-YYYY-MM-DD.jsonl), oldest first. */
  readonly name: string;
  readonly day: string;
  readonly text: string;
}

export type VerifyResult =
  | {
      readonly ok: true;
      readonly events: number;
      readonly files: number;
      /** Unsealed lines before the first sealed one (written before sealing existed); not verifiable. */
      readonly legacy: number;
    }
  | {
      readonly ok: false;
      readonly file: string;
      /** 1-based line number. */
      readonly line: number;
      readonly problem: 'edited' | 'inserted' | 'deleted' | 'reordered' | 'unsealed' | 'truncated';
      readonly reason: string;
      /** Events verified before the problem. */
      readonly events: number;
    };

interface WriterState {
  n: number;
  mac: string;
}

/** Verify day files (oldest first) with the audit key. Stops at the first problem. */
export function verifyChain(key: Uint8Array, files: readonly DayFileText[]): VerifyResult {
  const writers = new Map<string, WriterState>();
  const kid = keyIdOf(key);
  const oldestDay = files[0]?.day ?? '';
  let events = 0;
  let legacy = 0;
  for (const f of files) {
    const lines = f.text.split('\n');
    const tail = lines.pop() ?? '';
    const seenHere = new Set<string>();
    const fail = (line: number, problem: Exclude<VerifyResult, { ok: true }>['problem'], reason: string) =>
      ({ ok: false, file: f.name, line, problem, reason, events }) as const;
    for (let i = 0; i < lines.length; i++) {
      const text = lines[i] as string;
      const lineNo = i + 1;
      const sealed = unsealLine(text);
      if (!sealed) {
        let parsed = false;
        try {
          JSON.parse(text);
          parsed = true;
        } catch {
          // not JSON
        }
        if (parsed && events === 0) {
          legacy++;
          continue;
        }
        return parsed
          ? fail(
              lineNo,
              'unsealed',
              'the event carries no seal (inserted, or written while the vault was locked)',
            )
          : fail(lineNo, 'edited', 'the line is not a valid audit event (edited)');
      }
      let chain: ChainFields;
      try {
        chain = JSON.parse(sealed.body) as ChainFields;
      } catch {
        return fail(lineNo, 'edited', 'the line is not valid JSON');
      }
      if (!macMatches(key, sealed.body, sealed.mac)) {
        return chain.k !== undefined && chain.k !== kid
          ? fail(
              lineNo,
              'edited',
              'sealed under another master key (before a rotate-master?): cannot be verified with the current one',
            )
          : fail(lineNo, 'edited', 'the seal does not match the line (edited or forged)');
      }
      const prev = writers.get(chain.w);
      if (prev) {
        if (chain.n <= prev.n)
          return fail(
            lineNo,
            'reordered',
            'this event comes after a later one of the same writer (reordered or duplicated)',
          );
        if (chain.n > prev.n + 1 || chain.p !== prev.mac) {
          return fail(
            lineNo,
            'deleted',
            `${chain.n - prev.n - 1 || 1} earlier event(s) of this writer are missing (deleted)`,
          );
        }
      } else if (chain.n > 0) {
        // The writer's earlier lines are not in the remaining files: fine only if they were in a day file
        // that retention removed (older than the oldest file left).
        if (!(chain.pd !== undefined && chain.pd < oldestDay)) {
          return fail(lineNo, 'deleted', 'earlier events of this writer are missing (deleted)');
        }
      }
      if (chain.l !== undefined && !seenHere.has(chain.l)) {
        return fail(lineNo, 'deleted', 'the event this writer started after is missing (deleted or moved)');
      }
      writers.set(chain.w, { n: chain.n, mac: sealed.mac });
      seenHere.add(sealed.mac);
      events++;
    }
    if (tail !== '') {
      return fail(
        lines.length + 1,
        'truncated',
        'truncated tail: the last line is incomplete (torn write or cut file)',
      );
    }
  }
  return { ok: true, events, files: files.length, legacy };
}

/**
 * SecretValues: the decrypted secret material of one credential, keyed by template placeholder.
 * It redacts itself everywhere it could be printed (toJSON, toString, util.inspect); never log `get()` results.
 *
 * Secret shape convention (every strategy follows it):
 * - Each entry of the credential's `secretRefs` contributes its placeholder → the secret's UTF-8 value
 *   (`secret` for single-secret credentials), so `{{secret}}` renders the raw value.
 * - When a value is a JSON object, each top-level string field (and finite number, as its decimal text)
 *   also becomes a placeholder: `{"api_key":"…","app_key":"…"}` gives `{{api_key}}` and `{{app_key}}`;
 *   `{"clientId","clientSecret","refreshToken"}`, `{"access_key_id","secret_access_key","session_token"}` and
 *   `{"cert","key"}` work the same way. Nested objects/arrays are ignored.
 * - An explicit placeholder always wins over a derived field. Two JSON secrets that derive the same field with
 *   different values make it ambiguous: the field is dropped, so rendering it fails closed.
 */
import { inspect } from 'node:util';

const REDACTED = '[redacted]';

export class SecretValues {
  readonly #values: ReadonlyMap<string, string>;

  private constructor(values: ReadonlyMap<string, string>) {
    this.#values = values;
  }

  /** Build from placeholder → secret value (applies the JSON-object expansion described above). */
  static from(bySlot: Readonly<Record<string, string>>): SecretValues {
    const explicit = new Map<string, string>();
    for (const [name, value] of Object.entries(bySlot)) {
      if (typeof value === 'string') explicit.set(name, value);
    }
    const derived = new Map<string, string>();
    const ambiguous = new Set<string>();
    for (const value of explicit.values()) {
      for (const [field, fieldValue] of jsonFields(value)) {
        if (explicit.has(field) || ambiguous.has(field)) continue;
        const seen = derived.get(field);
        if (seen === undefined) derived.set(field, fieldValue);
        else if (seen !== fieldValue) {
          derived.delete(field);
          ambiguous.add(field);
        }
      }
    }
    for (const [field, fieldValue] of derived) explicit.set(field, fieldValue);
    return new SecretValues(explicit);
  }

  get(name: string): string | undefined {
    return this.#values.get(name);
  }

  has(name: string): boolean {
    return this.#values.has(name);
  }

  /** First present name wins (for aliases such as `access_key_id` / `accessKeyId`). */
  first(...names: readonly string[]): string | undefined {
    for (const name of names) {
      const value = this.#values.get(name);
      if (value !== undefined) return value;
    }
    return undefined;
  }

  get size(): number {
    return this.#values.size;
  }

  /** Every value, for redaction of printed text only. */
  valuesForRedaction(): string[] {
    return [...new Set(this.#values.values())].filter((v) => v.length > 0);
  }

  toJSON(): string {
    return REDACTED;
  }

  toString(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return `SecretValues(${this.#values.size}) ${REDACTED}`;
  }
}

function jsonFields(value: string): [string, string][] {
  let i = 0;
  while (i < value.length && /\s/.test(value[i] as string)) i++;
  if (value[i] !== '{') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return [];
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return [];
  const out: [string, string][] = [];
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (k.length === 0) continue;
    if (typeof v === 'string') out.push([k, v]);
    else if (typeof v === 'number' && Number.isFinite(v)) out.push([k, String(v)]);
  }
  return out;
}

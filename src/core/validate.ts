/**
 * Schema validation for the stores' files (valibot), with issues as `{ path, message }` data whose
 * messages never carry a value: a hand-edited file may hold a secret where a name was expected, and the
 * message ends up in errors, logs and the audit trail.
 *
 * Why valibot and not zod (which these schemas used until issue 12's memory work): every aivaultd thread
 * validates store files, so every isolate loads the library. Importing zod 4 cost each isolate ~6 MB of V8
 * heap and ~12 MB RSS (its classic API builds hundreds of schema objects and closures at import); valibot
 * is a set of small functions and cost ~1 MB. Three isolates per idle daemon made that the biggest single
 * item of its RSS.
 */
import * as v from 'valibot';

export { v };

/** Building blocks the store schemas share. */
export const nonEmpty = v.pipe(v.string(), v.minLength(1));
export const nonNegativeInt = v.pipe(v.number(), v.safeInteger(), v.minValue(0));
export const positiveInt = v.pipe(v.number(), v.safeInteger(), v.minValue(1));

/** A schema whose parsed output is `T`. */
export type Schema<T> = v.GenericSchema<unknown, T>;

export interface Issue {
  /** Keys from the document root to the bad value (empty: the document itself). */
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

export type Validated<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly issues: Issue[] };

/**
 * The message for an issue whose schema or action names none of its own: what was expected, never what
 * was received (valibot's default message quotes the received value).
 */
function valueFreeMessage(issue: v.BaseIssue<unknown>): string {
  if (issue.kind === 'schema') {
    return issue.expected === 'never' ? 'unknown field' : `expected ${issue.expected ?? 'a valid value'}`;
  }
  const what = issue.type.replace(/_/g, ' ');
  return issue.expected ? `${what}: expected ${issue.expected}` : `${what} failed`;
}

/** Validate `raw` against `schema`: the parsed value, or every issue found. */
export function validate<T>(schema: Schema<T>, raw: unknown): Validated<T> {
  const result = v.safeParse(schema, raw, { message: valueFreeMessage });
  if (result.success) return { ok: true, value: result.output };
  return {
    ok: false,
    issues: result.issues.map((issue) => ({
      path: issue.path?.map((item) => item.key as PropertyKey) ?? [],
      message: issue.message,
    })),
  };
}

/** `a.b.0.c` for an issue path; `(root)` for the document itself. */
export function dotPath(path: readonly PropertyKey[]): string {
  return path.length === 0 ? '(root)' : path.map((p) => String(p)).join('.');
}

/**
 * A check over a whole array that reports at the offending items (e.g. duplicate ids): `bad` returns a
 * message for an item, or undefined when it is fine; it sees every earlier item through its own closure.
 */
export function eachItem<T>(bad: () => (item: T, index: number) => string | undefined) {
  return v.rawCheck<T[]>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const check = bad();
    dataset.value.forEach((item, index) => {
      const message = check(item, index);
      if (message === undefined) return;
      addIssue({
        message,
        path: [{ type: 'array', origin: 'value', input: dataset.value, key: index, value: item }],
      });
    });
  });
}

/** A check over an object that reports at one of its fields (not at the object). */
export function fieldCheck<T extends Record<string, unknown>>(
  field: keyof T & string,
  bad: (value: T) => string | undefined,
) {
  return v.rawCheck<T>(({ dataset, addIssue }) => {
    if (!dataset.typed) return;
    const message = bad(dataset.value);
    if (message === undefined) return;
    addIssue({
      message,
      path: [
        {
          type: 'object',
          origin: 'value',
          input: dataset.value,
          key: field,
          value: dataset.value[field],
        },
      ],
    });
  });
}

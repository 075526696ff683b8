import { describe, expect, it } from 'vitest';
import { dotPath, eachItem, fieldCheck, v, validate } from '../../../src/core/validate.js';
import { parseFile, secretRecordSchema } from '../../../src/stores/vault/records.js';
import { parseStoreFile, brokerFileSchema } from '../../../src/stores/catalog/schema.js';

const SECRETISH = 'sk-live-0123456789abcdefSECRET';

function thrown(fn: () => unknown): { code?: string; message?: string } | undefined {
  try {
    fn();
  } catch (e) {
    return e as { code?: string; message?: string };
  }
  return undefined;
}

describe('validate (store-file schemas)', () => {
  it('returns the parsed value when the input matches', () => {
    const r = validate(v.strictObject({ a: v.number() }), { a: 1 });
    expect(r).toEqual({ ok: true, value: { a: 1 } });
  });

  it('names an unknown field by its own path, and never echoes a received value', () => {
    const schema = v.strictObject({ name: v.pipe(v.string(), v.regex(/^[a-z]+$/)), n: v.number() });
    const r = validate(schema, { name: SECRETISH, n: SECRETISH, [SECRETISH.slice(0, 8)]: SECRETISH });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.issues.map((i) => dotPath(i.path)).sort()).toEqual(['n', 'name', 'sk-live-'].sort());
    for (const issue of r.issues) expect(issue.message).not.toContain('SECRET');
    expect(r.issues.find((i) => dotPath(i.path) === 'sk-live-')?.message).toBe('unknown field');
    expect(r.issues.find((i) => dotPath(i.path) === 'n')?.message).toBe('expected number');
  });

  it('keeps a message the schema gives', () => {
    const r = validate(v.pipe(v.string(), v.regex(/^x$/, 'must be x')), 'y');
    expect(r.ok ? undefined : r.issues[0]?.message).toBe('must be x');
  });

  it('eachItem reports at the offending items; fieldCheck at the named field', () => {
    const unique = v.pipe(
      v.array(v.string()),
      eachItem<string>(() => {
        const seen = new Set<string>();
        return (item) => (seen.has(item) ? `duplicate ${item}` : (seen.add(item), undefined));
      }),
    );
    const r1 = validate(unique, ['a', 'b', 'a', 'a']);
    expect(r1.ok ? [] : r1.issues.map((i) => [dotPath(i.path), i.message])).toEqual([
      ['2', 'duplicate a'],
      ['3', 'duplicate a'],
    ]);
    // The checker is made per parse: a second parse starts with nothing seen.
    expect(validate(unique, ['a']).ok).toBe(true);

    const pair = v.pipe(
      v.strictObject({ a: v.optional(v.string()), b: v.optional(v.string()) }),
      fieldCheck('b', (o) => (o.b !== undefined && o.a === undefined ? 'b needs a' : undefined)),
    );
    const r2 = validate(pair, { b: 'x' });
    expect(r2.ok ? [] : r2.issues.map((i) => [dotPath(i.path), i.message])).toEqual([['b', 'b needs a']]);
    expect(validate(pair, { a: 'y', b: 'x' }).ok).toBe(true);
  });

  it('a corrupt secret record or broker.json holding a secret-looking value never quotes it', () => {
    const rec = {
      format: 'aivault.secret.v1',
      id: 'abcdefghijklmnopqrstuvwxyz',
      name: SECRETISH + '!',
      aliases: [],
      scope: { kind: 'global' },
      attachedGroups: [],
      createdAtMs: 1,
      updatedAtMs: 1,
      aadVersion: 1,
      alg: 'xchacha20poly1305-ietf',
      value: { nonce: 'AA==', ciphertext: 'AA==' },
      wraps: [{ kekId: 'ab', nonce: 'AA==', ciphertext: 'AA==' }],
    };
    let err = thrown(() => parseFile(secretRecordSchema, rec, 'secrets/x.json'));
    expect(err?.code).toBe('storage_corrupt');
    expect(err?.message).toContain('field name is invalid');
    expect(err?.message).not.toContain('SECRET');

    err = thrown(() =>
      parseStoreFile(
        brokerFileSchema,
        { version: 1, credentials: [{ id: SECRETISH + '!' }], capabilities: [], policies: [] },
        'broker.json',
      ),
    );
    expect(err?.code).toBe('storage_corrupt');
    expect(err?.message).toContain('credentials.0.id:');
    expect(err?.message).not.toContain('SECRET');
  });
});

/**
 * Types that carry secret material. Each one redacts itself when logged, stringified or inspected, so a
 * stray `console.log` or `JSON.stringify` can never print a value or a key.
 */
import { inspect } from 'node:util';
import { AivaultError } from '../../core/errors.js';
import { KEY_BYTES, sodium } from './sodium.js';

export const REDACTED = '[redacted]';

/** Plaintext secret value. Call `reveal()` only at the point of auth injection; `dispose()` when done. */
export class SecretBytes {
  #bytes: Buffer | undefined;

  /** Takes ownership of `bytes` (the caller must not keep using it). */
  constructor(bytes: Buffer) {
    this.#bytes = bytes;
  }

  static fromString(value: string): SecretBytes {
    return new SecretBytes(Buffer.from(value, 'utf8'));
  }

  get length(): number {
    return this.#live().length;
  }

  get disposed(): boolean {
    return this.#bytes === undefined;
  }

  /** The value as UTF-8 text, for auth injection. */
  reveal(): string {
    return this.#live().toString('utf8');
  }

  /** A copy of the raw bytes (the caller owns and should zero it). */
  revealBytes(): Buffer {
    return Buffer.from(this.#live());
  }

  /** Zero the plaintext. Idempotent. */
  dispose(): void {
    if (this.#bytes) sodium.sodium_memzero(this.#bytes);
    this.#bytes = undefined;
  }

  #live(): Buffer {
    if (!this.#bytes) throw new AivaultError('internal', 'secret value used after dispose()');
    return this.#bytes;
  }

  toString(): string {
    return REDACTED;
  }
  toJSON(): string {
    return REDACTED;
  }
  [inspect.custom](): string {
    return REDACTED;
  }
}

/**
 * The key-encryption key: 32 bytes in libsodium secure memory (guard pages, mlock), kept no-access except
 * for the duration of a `use()` call. `dispose()` zeroes it.
 */
export class Kek {
  #mem: Buffer | undefined;
  /** Public id of this key: keyed BLAKE2b-128 (key = KEK) over "fingerprint". Safe to store and show. */
  readonly kekId: string;

  private constructor(mem: Buffer, kekId: string) {
    this.#mem = mem;
    this.kekId = kekId;
  }

  /** Copies `key` (32 bytes) into secure memory and zeroes the source. */
  static fromBytes(key: Uint8Array): Kek {
    if (key.length !== KEY_BYTES) {
      sodium.sodium_memzero(key);
      throw new AivaultError('vault_unavailable', `master key must be ${KEY_BYTES} bytes, got ${key.length}`);
    }
    const mem = sodium.sodium_malloc(KEY_BYTES);
    mem.set(key);
    sodium.sodium_memzero(key);
    const id = Buffer.alloc(16);
    sodium.crypto_generichash(id, Buffer.from('fingerprint'), mem);
    sodium.sodium_mprotect_noaccess(mem);
    return new Kek(mem, id.toString('hex'));
  }

  /** Short fingerprint for `status` (prefix of the kekId; a hash, never the key). */
  get fingerprint(): string {
    return this.kekId.slice(0, 16);
  }

  get disposed(): boolean {
    return this.#mem === undefined;
  }

  /** Run `fn` with read access to the key bytes. `fn` must not keep a reference to them. */
  use<T>(fn: (key: Buffer) => T): T {
    const mem = this.#mem;
    if (!mem) throw new AivaultError('vault_unavailable', 'the vault is locked (master key was disposed)');
    sodium.sodium_mprotect_readonly(mem);
    try {
      return fn(mem);
    } finally {
      sodium.sodium_mprotect_noaccess(mem);
    }
  }

  dispose(): void {
    const mem = this.#mem;
    if (!mem) return;
    this.#mem = undefined;
    sodium.sodium_mprotect_readwrite(mem);
    sodium.sodium_memzero(mem);
    sodium.sodium_free(mem);
  }

  toString(): string {
    return `Kek(${REDACTED})`;
  }
  toJSON(): string {
    return REDACTED;
  }
  [inspect.custom](): string {
    return `Kek(${REDACTED})`;
  }
}

/**
 * Typed access to the parts of sodium-native the vault uses (the package ships no TypeScript types).
 * All vault crypto goes through libsodium; nothing here holds state.
 */
import { createRequire } from 'node:module';

export interface Sodium {
  readonly crypto_aead_xchacha20poly1305_ietf_KEYBYTES: number;
  readonly crypto_aead_xchacha20poly1305_ietf_NPUBBYTES: number;
  readonly crypto_aead_xchacha20poly1305_ietf_ABYTES: number;
  readonly crypto_auth_BYTES: number;
  readonly crypto_auth_KEYBYTES: number;
  crypto_aead_xchacha20poly1305_ietf_encrypt(
    c: Uint8Array,
    m: Uint8Array,
    ad: Uint8Array | null,
    nsec: null,
    npub: Uint8Array,
    k: Uint8Array,
  ): number;
  crypto_aead_xchacha20poly1305_ietf_decrypt(
    m: Uint8Array,
    nsec: null,
    c: Uint8Array,
    ad: Uint8Array | null,
    npub: Uint8Array,
    k: Uint8Array,
  ): number;
  crypto_generichash(out: Uint8Array, input: Uint8Array, key?: Uint8Array): void;
  crypto_kdf_derive_from_key(sub: Uint8Array, id: number, ctx: Uint8Array, key: Uint8Array): void;
  crypto_auth(out: Uint8Array, input: Uint8Array, key: Uint8Array): void;
  crypto_auth_verify(mac: Uint8Array, input: Uint8Array, key: Uint8Array): boolean;
  randombytes_buf(buf: Uint8Array): void;
  sodium_malloc(size: number): Buffer;
  sodium_free(buf: Buffer): void;
  sodium_memzero(buf: Uint8Array): void;
  sodium_memcmp(a: Uint8Array, b: Uint8Array): boolean;
  sodium_mprotect_noaccess(buf: Buffer): void;
  sodium_mprotect_readonly(buf: Buffer): void;
  sodium_mprotect_readwrite(buf: Buffer): void;
}

const require = createRequire(import.meta.url);
export const sodium = require('sodium-native') as Sodium;

export const KEY_BYTES = 32;
export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;

export function randomBytes(n: number): Buffer {
  const out = Buffer.alloc(n);
  sodium.randombytes_buf(out);
  return out;
}

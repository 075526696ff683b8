/**
 * The policy seal: a MAC over each policy file (broker.json, capabilities.json, tokens.json) so that code
 * running as the user, which can write the vault directory but not unlock it, cannot widen policy by
 * editing those files (unpin a credential's hosts, widen a capability, add a token). Only passphrase
 * vaults are sealed: with a file/env/keychain key the same attacker reads the key anyway, and in system
 * mode the files are out of its reach (docs/security.md).
 *
 *   seal = { v: 1, macs: [{ kid, mac }] }      stored as the file's top-level `seal` field
 *   mac  = crypto_auth(key, encodeFields(["aivault:policy-seal:v1", vaultId, file, canonicalJson(doc − seal)]))
 *   key  = crypto_kdf_derive_from_key(KEK, id 1, context "aivpol01"),   kid = the KEK's kekId
 *
 * Why sodium crypto_auth (HMAC-SHA-512-256) rather than node:crypto HMAC: the key comes from libsodium's
 * KDF like the dev-flag and audit keys, and crypto_auth_verify compares in constant time; one library for
 * all vault crypto. The vault id and the file name are in the MAC, so a sealed file cannot be moved into
 * another file's place or another vault. A file carries one MAC per key while rotate-master is in
 * flight (add under the new key, switch vault.json, drop the old one): whichever KEK vault.json names,
 * its MAC is there. A reader checks only the MAC of the live kid.
 *
 * Whether a vault is sealed is vault.json's `policySeal` flag, bound into the passphrase check record's
 * AAD (aead.ts), so only a KEK holder can tell a genuine flag from a flipped one. Readers therefore ask a
 * *seal source* for the verified state: a Vault instance in this thread holding the KEK (registered while
 * it holds it), else the thread's source (in aivaultd: the crypto worker, which answers with the MAC
 * subkey — never the KEK), else vault.json alone, which can only say "sealed: unlock first" or "legacy".
 * Runs in whichever thread reads or writes a policy file.
 */
import { dirname, join, resolve } from 'node:path';
import { AivaultError } from '../../core/errors.js';
import { encodeFields } from './aead.js';
import type { Kek } from './secret-bytes.js';
import { sodium } from './sodium.js';
import { readJsonFile, writeJsonAtomic } from './store.js';

export const POLICY_FILES = ['broker', 'capabilities', 'tokens'] as const;
export type PolicyFile = (typeof POLICY_FILES)[number];

const SEAL_LABEL = 'aivault:policy-seal:v1';
const KDF_CONTEXT = Buffer.from('aivpol01');
export const SEAL_VERSION = 1;

/** One MAC key: the subkey of one KEK, for one vault. */
export interface PolicySealKey {
  readonly vaultId: string;
  /** The kekId of the KEK the key was derived from (vault.json names the live one). */
  readonly kid: string;
  readonly key: Uint8Array;
}

export type PolicySealState = { readonly sealed: false } | ({ readonly sealed: true } & PolicySealKey);

export const UNSEALED: PolicySealState = Object.freeze({ sealed: false });

export interface SealField {
  readonly v: number;
  readonly macs: readonly { readonly kid: string; readonly mac: string }[];
}

export function policyFilePath(root: string, file: PolicyFile): string {
  return join(root, `${file}.json`);
}

/**
 * Canonical JSON: object keys sorted by UTF-16 code units, no whitespace, `undefined` members dropped (as
 * JSON.stringify does). Hand-written rather than a package because it is a MAC input: it must never
 * change with a dependency upgrade, and these files hold only strings, finite numbers, booleans, null,
 * arrays and plain objects, for which JSON.stringify's own scalar forms are already canonical.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) {
      throw new AivaultError('internal', 'policy files hold finite numbers only');
    }
    const out = JSON.stringify(value);
    if (out === undefined) throw new AivaultError('internal', `cannot seal a ${typeof value}`);
    return out;
  }
  if (Array.isArray(value)) {
    return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  }
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

/** The policy MAC key of `kek` for vault `vaultId` (caller zeroes `.key` when done). */
export function derivePolicySealKey(kek: Kek, vaultId: string): PolicySealKey {
  const key = Buffer.alloc(sodium.crypto_auth_KEYBYTES);
  kek.use((k) => sodium.crypto_kdf_derive_from_key(key, 1, KDF_CONTEXT, k));
  return { vaultId, kid: kek.kekId, key };
}

function message(vaultId: string, file: PolicyFile, content: unknown): Buffer {
  return encodeFields([SEAL_LABEL, vaultId, file, canonicalJson(content)]);
}

function withoutSeal(doc: unknown): Record<string, unknown> | undefined {
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
  const { seal: _seal, ...rest } = doc as Record<string, unknown>;
  return rest;
}

export function policyMac(key: PolicySealKey, file: PolicyFile, content: unknown): string {
  const mac = Buffer.alloc(sodium.crypto_auth_BYTES);
  sodium.crypto_auth(mac, message(key.vaultId, file, content), key.key);
  return mac.toString('base64');
}

/** `doc` with a seal holding one MAC per key (any seal it had is replaced). */
export function sealDocument<T extends object>(
  doc: T,
  file: PolicyFile,
  keys: readonly PolicySealKey[],
): T & { seal: SealField } {
  // Through JSON once: the MAC covers exactly what a reader will parse back (undefined members dropped).
  const content = withoutSeal(JSON.parse(JSON.stringify(doc)) as unknown) ?? {};
  const macs = keys.map((k) => ({ kid: k.kid, mac: policyMac(k, file, content) }));
  return { ...(content as T), seal: { v: SEAL_VERSION, macs } };
}

function corrupt(path: string, why: string): AivaultError {
  return new AivaultError(
    'storage_corrupt',
    `${path}: ${why}; the policy file was edited outside aivault (refusing to use it)`,
    { file: path, field: 'seal' },
  );
}

/**
 * Check `raw` (a parsed policy file) against `key` and return it without its seal. Missing seal, a seal
 * without the live kid, or a MAC mismatch → `storage_corrupt` naming the file.
 */
export function verifyDocument(
  raw: unknown,
  file: PolicyFile,
  key: PolicySealKey,
  path: string,
): Record<string, unknown> {
  const content = withoutSeal(raw);
  if (!content) throw corrupt(path, 'not a JSON object');
  const seal = (raw as { seal?: unknown }).seal as Partial<SealField> | undefined;
  if (seal === undefined) throw corrupt(path, 'the policy seal is missing');
  if (seal.v !== SEAL_VERSION || !Array.isArray(seal.macs))
    throw corrupt(path, 'the policy seal is malformed');
  const entry = seal.macs.find((m: unknown) => (m as { kid?: unknown } | null)?.kid === key.kid) as
    { mac?: unknown } | undefined;
  if (!entry || typeof entry.mac !== 'string') {
    throw corrupt(path, 'the policy seal has no MAC under the current master key');
  }
  const mac = Buffer.from(entry.mac, 'base64');
  if (
    mac.length !== sodium.crypto_auth_BYTES ||
    !sodium.crypto_auth_verify(mac, message(key.vaultId, file, content), key.key)
  ) {
    throw corrupt(path, 'the policy seal does not match the content');
  }
  return content;
}

// ───────────────────────── seal sources (per thread) ─────────────────────────

export type PolicySealSource = (root: string) => Promise<PolicySealState>;

/** Vault instances in this thread that hold a passphrase KEK, by vault root. */
const holders = new Map<string, Set<PolicySealSource>>();
/** This thread's source per vault root (aivaultd threads: the crypto worker). */
const threadSources = new Map<string, PolicySealSource>();

/** Register a KEK holder for `root`; returns its unregister function. */
export function registerSealHolder(vaultRoot: string, source: PolicySealSource): () => void {
  const root = resolve(vaultRoot);
  let set = holders.get(root);
  if (!set) holders.set(root, (set = new Set()));
  set.add(source);
  return () => {
    set.delete(source);
    if (set.size === 0 && holders.get(root) === set) holders.delete(root);
  };
}

/** Set this thread's source for vault `root` (aivaultd threads: the crypto worker); returns its remover. */
export function setPolicySealSource(vaultRoot: string, source: PolicySealSource): () => void {
  const root = resolve(vaultRoot);
  threadSources.set(root, source);
  return () => {
    if (threadSources.get(root) === source) threadSources.delete(root);
  };
}

/**
 * What vault.json alone can say, without a KEK: a passphrase vault flagged as sealed cannot be read until
 * it is unlocked (`vault_unavailable`, details.policySeal); anything else reads as unsealed. A flag flipped
 * to false is caught wherever the KEK is loaded (the check record binds it), so nothing that needs a key
 * ever runs on a policy this answer let through.
 */
export async function sealStateWithoutKey(root: string): Promise<PolicySealState> {
  const meta = (await readJsonFile(join(root, 'vault.json'))) as
    { provider?: { kind?: unknown }; policySeal?: unknown } | undefined;
  if (meta?.provider?.kind === 'passphrase' && meta.policySeal === true) {
    throw new AivaultError(
      'vault_unavailable',
      'the vault is locked and its policy files are sealed: run `aivault unlock` (or give the passphrase)',
      { policySeal: true },
    );
  }
  return UNSEALED;
}

/** The verified seal state of the vault at `root`, from the best source this thread has. */
export async function policySealState(vaultRoot: string): Promise<PolicySealState> {
  // One spelling per vault (a trailing slash or `..` in AIVAULT_DIR must not miss the registered source).
  const root = resolve(vaultRoot);
  // Any holder will do (they hold the same KEK); one whose key went stale (another process rotated the
  // master key) answers vault_unavailable and unregisters itself, so the next one is asked.
  for (const holder of [...(holders.get(root) ?? [])]) {
    try {
      return await holder(root);
    } catch (err) {
      if (!(err instanceof AivaultError) || err.code !== 'vault_unavailable') throw err;
    }
  }
  const source = threadSources.get(root);
  if (source) return source(root);
  return sealStateWithoutKey(root);
}

/**
 * Read policy file `path` (`<vault root>/<file>.json`): parsed JSON without its seal, verified when the
 * vault is sealed. Missing → undefined (unsealed vaults only).
 */
export async function readPolicyFile(path: string, file: PolicyFile): Promise<unknown> {
  const state = await policySealState(dirname(path));
  const raw = await readJsonFile(path);
  if (!state.sealed) return raw === undefined ? undefined : (withoutSeal(raw) ?? raw);
  // A sealed vault always has all three files (written when it was sealed): a missing one was deleted,
  // which could drop a policy (rate limit, method restriction) and so widen what callers may do.
  if (raw === undefined) throw corrupt(path, 'the sealed policy file is missing');
  return verifyDocument(raw, file, state, path);
}

/** Write policy file `path`, sealed under the live key when the vault is sealed. */
export async function writePolicyFile(path: string, file: PolicyFile, doc: object): Promise<void> {
  const state = await policySealState(dirname(path));
  await writeJsonAtomic(path, state.sealed ? sealDocument(doc, file, [state]) : doc);
}

/** The three files' content as stored now (unverified; the caller decides), seal stripped. */
export async function readPolicyContents(root: string): Promise<Map<PolicyFile, object | undefined>> {
  const out = new Map<PolicyFile, object | undefined>();
  for (const file of POLICY_FILES) {
    const raw = await readJsonFile(policyFilePath(root, file));
    out.set(file, raw === undefined ? undefined : withoutSeal(raw));
  }
  return out;
}

/** Empty documents a sealed vault starts with (same shapes the readers default to). */
export const EMPTY_POLICY: Readonly<Record<PolicyFile, () => object>> = {
  broker: () => ({ version: 1, credentials: [], capabilities: [], policies: [] }),
  capabilities: () => ({ version: 1, bindings: [] }),
  tokens: () => ({ version: 1, tokens: [] }),
};

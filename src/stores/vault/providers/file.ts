/**
 * `file` provider: a base64 32-byte key in a file (default config.defaultKeyFile, outside the vault dir
 * unless AIVAULT_DIR is set). Key file 0600, its directory 0700. Rotation stages `<path>.next` and
 * renames it over the key file after vault.json has switched.
 */
import { promises as fsp } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { AivaultError } from '../../../core/errors.js';
import { ensureDir, writeFileAtomic } from '../store.js';
import type { ProviderSection } from '../records.js';
import type { Kek } from '../secret-bytes.js';
import type { KeyProvider } from './provider.js';
import { kekFromBase64, kekToBase64, mismatch, randomKek } from './provider.js';

type FileSection = Extract<ProviderSection, { kind: 'file' }>;

async function readKeyFile(path: string): Promise<Kek | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new AivaultError('vault_unavailable', `cannot read key file ${path}: ${code ?? 'error'}`, {
      file: path,
    });
  }
  return kekFromBase64(text, `key file ${path}`);
}

async function writeKeyFile(path: string, kek: Kek): Promise<void> {
  await ensureDir(dirname(path));
  await writeFileAtomic(path, `${kekToBase64(kek)}\n`);
}

export const fileProvider: KeyProvider<FileSection> = {
  kind: 'file',
  needsPassphrase: false,

  async init(config, input) {
    const path = resolve(input.filePath ?? config.defaultKeyFile);
    // Reuse an existing valid key file rather than clobbering a key something else may depend on.
    const existing = await readKeyFile(path);
    if (existing) return { kek: existing, section: { kind: 'file', path } };
    const { kek } = randomKek();
    await writeKeyFile(path, kek);
    return { kek, section: { kind: 'file', path } };
  },

  async load(_config, section, input) {
    const kek = await readKeyFile(section.path);
    if (!kek) {
      throw new AivaultError('vault_unavailable', `key file ${section.path} is missing`, {
        file: section.path,
      });
    }
    if (kek.kekId === input.expectedKekId) return kek;
    kek.dispose();
    // Finish a rotation interrupted after vault.json switched but before the key file was replaced.
    const staged = await readKeyFile(`${section.path}.next`).catch(() => undefined);
    if (staged && staged.kekId === input.expectedKekId) {
      await fsp.rename(`${section.path}.next`, section.path);
      return staged;
    }
    staged?.dispose();
    throw mismatch(`key file ${section.path}`, 'restore the matching key file');
  },

  async prepareRotation(_config, section, input) {
    const kek = input.newKey !== undefined ? kekFromBase64(input.newKey, '--new-key') : randomKek().kek;
    return { kek, section };
  },

  async stage(_config, section, kek) {
    await writeKeyFile(`${section.path}.next`, kek);
  },

  async commit(_config, section) {
    await fsp.rename(`${section.path}.next`, section.path);
  },
};

// Reads the registry sources straight from disk, for tests that compare them with the compiled build.
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RegistryProvider } from '../../../src/core/registry/types.js';

export const REGISTRY_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'registry');

export function providerFiles(): string[] {
  return readdirSync(REGISTRY_DIR)
    .filter((f) => f.endsWith('.json') && f !== 'schema.json')
    .sort();
}

export function readJson(file: string): unknown {
  return JSON.parse(readFileSync(join(REGISTRY_DIR, file), 'utf8')) as unknown;
}

export function loadProviders(): { file: string; data: RegistryProvider }[] {
  return providerFiles().map((file) => ({ file, data: readJson(file) as RegistryProvider }));
}

export function readSchema(): Record<string, unknown> {
  return readJson('schema.json') as Record<string, unknown>;
}

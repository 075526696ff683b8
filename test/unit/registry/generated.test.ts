// The compiled registry is exactly the JSON on disk, and the generator fails loudly on broken input.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { REGISTRY_DATA } from '../../../src/core/registry/data.generated.js';
import { CAPABILITY_DEFAULTS } from '../../../src/core/registry/defaults.generated.js';
import { registry } from '../../../src/core/registry/index.js';
import { loadProviders, providerFiles } from './fixtures.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const GENERATOR = join(ROOT, 'scripts', 'gen-registry.mjs');

describe('generated registry data', () => {
  it('equals the provider JSON files on disk, sorted by provider', () => {
    const fromDisk = loadProviders()
      .map((p) => p.data)
      .sort((a, b) => (a.provider < b.provider ? -1 : 1));
    expect(REGISTRY_DATA).toEqual(fromDisk);
  });

  it('has exactly one provider per file present (and nothing else)', () => {
    const ids = registry.providers.map((p) => p.provider);
    expect(ids).toEqual(providerFiles().map((f) => f.replace(/\.json$/, '')));
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('indexes every capability and claim', () => {
    const caps = REGISTRY_DATA.flatMap((p) => p.capabilities);
    expect(registry.capabilityCount).toBe(caps.length);
    for (const cap of caps) expect(registry.getCapability(cap.id)).toEqual(cap);
    for (const p of REGISTRY_DATA) {
      for (const [name, placeholder] of Object.entries(p.vaultSecrets)) {
        expect(registry.claimFor(name)).toEqual({ secretName: name, provider: p.provider, placeholder });
      }
    }
    expect(registry.claimFor('NOT_A_CLAIMED_SECRET')).toBeUndefined();
  });
});

describe('scripts/gen-registry.mjs', () => {
  let work: string | undefined;
  afterEach(() => {
    if (work) rmSync(work, { recursive: true, force: true });
    work = undefined;
  });

  function sandbox(files: Record<string, string>): string {
    work = mkdtempSync(join(tmpdir(), 'aivault-gen-'));
    mkdirSync(join(work, 'scripts'));
    mkdirSync(join(work, 'registry'));
    mkdirSync(join(work, 'src', 'core', 'registry'), { recursive: true });
    cpSync(GENERATOR, join(work, 'scripts', 'gen-registry.mjs'));
    cpSync(join(ROOT, 'registry', 'schema.json'), join(work, 'registry', 'schema.json'));
    symlinkSync(join(ROOT, 'node_modules'), join(work, 'node_modules'), 'dir');
    for (const [name, text] of Object.entries(files)) writeFileSync(join(work, 'registry', name), text);
    return work;
  }

  function run(dir: string) {
    return spawnSync(process.execPath, [join(dir, 'scripts', 'gen-registry.mjs')], { encoding: 'utf8' });
  }

  const good = readFileSync(join(ROOT, 'registry', 'openai.json'), 'utf8');

  it('exits non-zero naming the file and reason for unparseable JSON', () => {
    const dir = sandbox({ 'openai.json': good, 'broken.json': '{"provider": "broken",' });
    const res = run(dir);
    expect(res.status).not.toBe(0);
    expect(res.stderr).toMatch(/registry\/broken\.json: invalid JSON/);
  });

  type ProviderJson = {
    provider: string;
    vaultSecrets: object;
    capabilities: { id: string; provider: string }[];
  };
  function renamed(provider: string, secrets: object): ProviderJson {
    const copy = JSON.parse(good) as ProviderJson;
    copy.provider = provider;
    copy.vaultSecrets = secrets;
    // The copy is another provider: openai's credential alternatives (their claims) stay openai's.
    delete (copy as { credentialAlternatives?: unknown }).credentialAlternatives;
    copy.capabilities = copy.capabilities.map((c) => ({
      ...c,
      id: c.id.replace('openai/', `${provider}/`),
      provider,
    }));
    return copy;
  }

  it('rejects schema violations', () => {
    const dir = sandbox({
      'openai.json': good,
      'other.json': JSON.stringify({ ...renamed('other', {}), capabilities: [] }),
    });
    const res = run(dir);
    expect(res.status).not.toBe(0);
    expect(res.stderr).toMatch(/registry\/other\.json: schema/);
  });

  it('rejects file/provider mismatches and duplicate claims', () => {
    const dir = sandbox({
      'openai.json': good,
      'misnamed.json': JSON.stringify(renamed('elsewhere', { ELSEWHERE_KEY: 'secret' })),
      'thief.json': JSON.stringify(renamed('thief', { OPENAI_API_KEY: 'secret' })),
    });
    const res = run(dir);
    expect(res.status).not.toBe(0);
    expect(res.stderr).toMatch(/registry\/misnamed\.json: provider "elsewhere" must match the file name/);
    expect(res.stderr).toMatch(/registry\/thief\.json: secret name OPENAI_API_KEY already claimed/);
  });

  it('writes sorted, loadable data for valid input', () => {
    const dir = sandbox({
      'openai.json': good,
      'aaa.json': JSON.stringify(renamed('aaa', { AAA_API_KEY: 'secret' })),
    });
    const res = run(dir);
    expect(res.status, res.stderr).toBe(0);
    const out = readFileSync(join(dir, 'src', 'core', 'registry', 'data.generated.ts'), 'utf8');
    const literal = /JSON\.parse\(\s*("(?:[^"\\]|\\.)*")/.exec(out)?.[1];
    const data = JSON.parse(JSON.parse(literal as string) as string) as { provider: string }[];
    expect(data.map((p) => p.provider)).toEqual(['aaa', 'openai']);
  });
});

describe('generated invoke defaults (the CLI start-up table)', () => {
  it('holds every built-in capability’s methods and path prefixes, and nothing else', () => {
    const caps = REGISTRY_DATA.flatMap((p) => p.capabilities);
    expect(Object.keys(CAPABILITY_DEFAULTS).sort()).toEqual(caps.map((c) => c.id).sort());
    for (const cap of caps) {
      expect(CAPABILITY_DEFAULTS[cap.id]).toEqual({
        methods: cap.allow.methods,
        pathPrefixes: cap.allow.pathPrefixes,
      });
    }
    expect(Object.hasOwn(CAPABILITY_DEFAULTS, 'constructor')).toBe(false);
  });
});

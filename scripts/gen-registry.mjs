#!/usr/bin/env node
// Compiles registry/*.json (one provider per file; schema.json excluded) into src/core/registry/data.generated.ts,
// so the running program never reads registry JSON from disk. Also writes src/core/registry/defaults.generated.ts:
// each capability's allowed methods and path prefixes only, which is all `aivault invoke` needs at start
// (its defaults), about a tenth of the full registry and without the compile/freeze pass (issue 12). Run by `npm run gen:registry` (and by build /
// typecheck). Fails loudly, with one `registry/<file>: <reason>` line per problem and exit code 1, on
// unparseable JSON, schema violations and cross-file conflicts (duplicate providers, capability ids or
// claimed secret names). Output is deterministic (sorted by provider) and only rewritten when it changes.
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const REGISTRY_DIR = join(ROOT, 'registry');
const SCHEMA_FILE = 'schema.json';
const OUT_FILE = join(ROOT, 'src', 'core', 'registry', 'data.generated.ts');
const DEFAULTS_FILE = join(ROOT, 'src', 'core', 'registry', 'defaults.generated.ts');

/** Write `file` only when its text changes (keeps tsc/esbuild incremental); true when it was unchanged. */
function writeIfChanged(file, source) {
  const previous = existsSync(file) ? readFileSync(file, 'utf8') : '';
  if (previous !== source) writeFileSync(file, source);
  return previous === source;
}

/** @type {string[]} */
const errors = [];
const fail = (file, reason) => errors.push(`registry/${file}: ${reason}`);

function loadValidator() {
  const schemaPath = join(REGISTRY_DIR, SCHEMA_FILE);
  if (!existsSync(schemaPath)) {
    fail(SCHEMA_FILE, 'missing');
    return undefined;
  }
  let schema;
  try {
    schema = JSON.parse(readFileSync(schemaPath, 'utf8'));
  } catch (err) {
    fail(SCHEMA_FILE, `invalid JSON: ${err.message}`);
    return undefined;
  }
  let Ajv2020;
  try {
    // ajv is a dev dependency: always present where the build runs; skip schema checks (loudly) otherwise.
    Ajv2020 = createRequire(import.meta.url)('ajv/dist/2020.js').default;
  } catch {
    process.stderr.write('gen-registry: warning: ajv not installed, skipping JSON Schema validation\n');
    return undefined;
  }
  try {
    return new Ajv2020({ allErrors: true }).compile(schema);
  } catch (err) {
    fail(SCHEMA_FILE, `schema does not compile: ${err.message}`);
    return undefined;
  }
}

function main() {
  const validate = loadValidator();
  const files = readdirSync(REGISTRY_DIR)
    .filter((f) => f.endsWith('.json') && f !== SCHEMA_FILE)
    .sort();
  if (files.length === 0) fail('', 'no provider files found');

  const providers = [];
  for (const file of files) {
    let data;
    try {
      data = JSON.parse(readFileSync(join(REGISTRY_DIR, file), 'utf8'));
    } catch (err) {
      fail(file, `invalid JSON: ${err.message}`);
      continue;
    }
    if (data === null || typeof data !== 'object' || Array.isArray(data)) {
      fail(file, 'top level must be a JSON object');
      continue;
    }
    if (validate && !validate(data)) {
      for (const e of validate.errors ?? []) fail(file, `schema: ${e.instancePath || '/'} ${e.message}`);
      continue;
    }
    if (`${data.provider}.json` !== file) fail(file, `provider "${data.provider}" must match the file name`);
    providers.push({ file, data });
  }

  const byProvider = new Map();
  const byCapability = new Map();
  const claims = new Map();
  for (const { file, data } of providers) {
    if (byProvider.has(data.provider)) fail(file, `duplicate provider "${data.provider}"`);
    byProvider.set(data.provider, file);
    for (const cap of data.capabilities ?? []) {
      if (byCapability.has(cap.id))
        fail(file, `capability "${cap.id}" also defined in ${byCapability.get(cap.id)}`);
      byCapability.set(cap.id, file);
      if (cap.provider !== data.provider || !cap.id.startsWith(`${data.provider}/`)) {
        fail(file, `capability "${cap.id}" must belong to provider "${data.provider}"`);
      }
    }
    // Alternatives of one provider may share a secret (one login, several path prefixes); another
    // provider may not claim it.
    const own = new Set();
    const names = [
      ...Object.keys(data.vaultSecrets ?? {}),
      ...(data.credentialAlternatives ?? []).flatMap((a) => Object.keys(a.vaultSecrets ?? {})),
    ];
    for (const name of names) {
      if (own.has(name)) continue;
      own.add(name);
      if (claims.has(name)) fail(file, `secret name ${name} already claimed by ${claims.get(name)}`);
      claims.set(name, file);
    }
    const altIds = new Set();
    const capIds = new Set((data.capabilities ?? []).map((c) => c.id));
    for (const alt of data.credentialAlternatives ?? []) {
      if (altIds.has(alt.id)) fail(file, `duplicate credential alternative "${alt.id}"`);
      altIds.add(alt.id);
      for (const id of alt.capabilities ?? []) {
        if (!capIds.has(id))
          fail(file, `credential alternative "${alt.id}" names unknown capability "${id}"`);
      }
    }
  }

  if (errors.length > 0) {
    process.stderr.write(
      `gen-registry: ${errors.length} problem(s):\n${errors.map((e) => `  ${e}\n`).join('')}`,
    );
    process.exit(1);
  }

  const data = providers.map((p) => p.data).sort((a, b) => (a.provider < b.provider ? -1 : 1));
  // JSON.parse of one string literal loads faster than an equivalent object literal and keeps the file small.
  const source =
    `// Generated by scripts/gen-registry.mjs from registry/*.json. Do not edit; run \`npm run gen:registry\`.\n` +
    `import type { RegistryProvider } from './types.js';\n\n` +
    `export const REGISTRY_DATA: readonly RegistryProvider[] = JSON.parse(\n  ${JSON.stringify(JSON.stringify(data))},\n) as readonly RegistryProvider[];\n`;
  const unchanged = writeIfChanged(OUT_FILE, source);
  /** @type {Record<string, { methods: string[], pathPrefixes: string[] }>} */
  const defaults = {};
  for (const p of data) {
    for (const c of p.capabilities)
      defaults[c.id] = { methods: c.allow.methods, pathPrefixes: c.allow.pathPrefixes };
  }
  writeIfChanged(
    DEFAULTS_FILE,
    `// Generated by scripts/gen-registry.mjs from registry/*.json. Do not edit; run \`npm run gen:registry\`.\n` +
      `// Built-in capability id -> its allowed methods and path prefixes (the CLI's invoke defaults).\n` +
      `import type { CapabilityAllow } from './types.js';\n\n` +
      `export const CAPABILITY_DEFAULTS: Readonly<\n  Record<string, Pick<CapabilityAllow, 'methods' | 'pathPrefixes'>>\n> = JSON.parse(\n  ${JSON.stringify(JSON.stringify(defaults))},\n) as Readonly<Record<string, Pick<CapabilityAllow, 'methods' | 'pathPrefixes'>>>;\n`,
  );
  const capabilities = data.reduce((n, p) => n + p.capabilities.length, 0);
  process.stdout.write(
    `gen-registry: ${data.length} providers, ${capabilities} capabilities -> ${relative(ROOT, OUT_FILE)}, ${relative(ROOT, DEFAULTS_FILE)}${unchanged ? ' (unchanged)' : ''}\n`,
  );
}

main();

#!/usr/bin/env node
// CI supply-chain gate: fail on any high or critical advisory in production dependencies.
// `npm audit --audit-level=high || true` would also swallow real findings, so the JSON is read instead: only
// an unreachable advisory endpoint (this workplace's registry mirror answers 405 to the bulk-advisory POST)
// is tolerated, and it is reported loudly. Because of that mirror, the lockfile is ALSO checked, always,
// against the committed list of advisories we know touch our tree (scripts/advisory-floors.json).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import semver from 'semver';

/**
 * Production packages in a package-lock.json (v2/v3) whose version falls in a listed advisory's range.
 * @param {any} lock parsed package-lock.json
 * @param {{ id: string, package: string, severity: string, vulnerable: string, title: string }[]} advisories
 * @returns {string[]} one line per hit
 */
export function lockfileFindings(lock, advisories) {
  for (const a of advisories)
    if (!semver.validRange(a.vulnerable)) throw new Error(`advisory ${a.id}: bad range ${a.vulnerable}`);
  const hits = [];
  for (const [where, pkg] of Object.entries(lock?.packages ?? {})) {
    if (!where || pkg?.dev) continue;
    // An aliased install ("uWebSockets.js": "npm:@trufflesuite/…") is keyed by its alias; the advisory is
    // about the real package name.
    const name = pkg.name ?? where.slice(where.lastIndexOf('node_modules/') + 'node_modules/'.length);
    for (const a of advisories) {
      if (a.package !== name || !pkg.version) continue;
      if (semver.satisfies(pkg.version, a.vulnerable, { includePrerelease: true }))
        hits.push(`audit: ${a.severity}: ${name}@${pkg.version} at ${where}: ${a.id} ${a.title}`);
    }
  }
  return hits;
}

/**
 * Decide from `npm audit --json` output.
 * @param {any} report parsed JSON
 * @returns {{ pass: boolean, lines: string[] }}
 */
export function auditVerdict(report) {
  const counts = report?.metadata?.vulnerabilities;
  if (!counts) {
    const why = report?.message ?? report?.error?.summary ?? 'unknown error';
    return {
      pass: true,
      lines: [`audit: WARNING: advisory database unreachable, production dependencies NOT audited: ${why}`],
    };
  }
  const serious = Object.entries(report.vulnerabilities ?? {}).filter(([, v]) =>
    ['high', 'critical'].includes(v?.severity),
  );
  return {
    pass: serious.length === 0,
    lines: [
      ...serious.map(([name, v]) => `audit: ${v.severity}: ${name} ${v.range ?? ''}`.trim()),
      `audit: production dependencies: ${counts.critical ?? 0} critical, ${counts.high ?? 0} high, ${counts.moderate ?? 0} moderate, ${counts.low ?? 0} low`,
    ],
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const floors = JSON.parse(readFileSync(`${root}scripts/advisory-floors.json`, 'utf8'));
  const known = lockfileFindings(
    JSON.parse(readFileSync(`${root}package-lock.json`, 'utf8')),
    floors.advisories,
  );
  for (const l of known) console.error(l);
  console.log(
    `audit: lockfile vs ${floors.advisories.length} known advisories (reviewed ${floors.reviewed}): ${known.length} hit(s)`,
  );
  const run = spawnSync('npm', ['audit', '--omit=dev', '--json'], {
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
  });
  let report;
  try {
    report = JSON.parse(run.stdout);
  } catch {
    console.error(`audit: npm audit printed no JSON (exit ${run.status}):\n${run.stderr.slice(0, 2000)}`);
    process.exit(1);
  }
  const { pass, lines } = auditVerdict(report);
  for (const l of lines) (pass ? console.log : console.error)(l);
  process.exit(pass && known.length === 0 ? 0 : 1);
}

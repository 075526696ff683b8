#!/usr/bin/env node
// CI supply-chain gate: fail on any high or critical advisory in production dependencies.
// `npm audit --audit-level=high || true` would also swallow real findings, so the JSON is read instead: only
// an unreachable advisory endpoint (this workplace's registry mirror answers 405 to the bulk-advisory POST)
// is tolerated, and it is reported loudly.
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';

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
  process.exit(pass ? 0 : 1);
}

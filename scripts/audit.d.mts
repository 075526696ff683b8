/** See audit.mjs. */
export function auditVerdict(report: unknown): { pass: boolean; lines: string[] };
export interface KnownAdvisory {
  id: string;
  package: string;
  severity: string;
  vulnerable: string;
  title: string;
}
export function lockfileFindings(lock: unknown, advisories: KnownAdvisory[]): string[];

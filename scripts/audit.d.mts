/** See audit.mjs. */
export function auditVerdict(report: unknown): { pass: boolean; lines: string[] };
